# ViT student <- CNN teacher, Hinton KD: 0.5 CE + 0.5 KL(T=1), the ImageNet setting of the
# DKD/TaT papers' KD baselines.
_base_ = ['../_base_/fmnist_results.py']
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_vit_p7_w64.py',
    teacher='configs/_base_/models/fmnist_resnet_w16.py',
    teacher_ckpt='work_dirs/teachers/teacher_cnn/epoch_6.pth',
    student_loss_weight=0.5,
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=0.5)),
)
