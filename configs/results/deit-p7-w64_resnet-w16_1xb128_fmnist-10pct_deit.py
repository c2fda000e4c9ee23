# ViT student with a distillation token <- CNN teacher, DeiT's hard distillation:
# 0.5 CE(cls token) + 0.5 CE(dist token, teacher's argmax); it predicts with (cls + dist) / 2.
_base_ = ['../_base_/fmnist_results_vit-student_cnn-teacher.py']
model = dict(
    student='configs/_base_/models/fmnist_deit_p7_w64.py',
    student_loss_weight=0.5,
    distill_losses=dict(loss_deit=dict(type='DeiTLoss', mode='hard', loss_weight=0.5)),
)
