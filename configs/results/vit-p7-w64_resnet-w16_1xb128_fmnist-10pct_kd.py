# ViT student <- CNN teacher, Hinton KD: 0.5 CE + 0.5 KL(T=1), the ImageNet setting of the
# DKD/TaT papers' KD baselines.
_base_ = ['../_base_/fmnist_results_vit-student_cnn-teacher.py']
model = dict(
    student_loss_weight=0.5,
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=0.5)),
)
