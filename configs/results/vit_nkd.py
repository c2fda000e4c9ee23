# ViT student <- CNN teacher, NKD (normalized KD) next to the full CE, the paper's ImageNet
# setting for CNN students (T=1, gamma=1.5).
_base_ = ['../_base_/fmnist_results.py']
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_vit_p7_w64.py',
    teacher='configs/_base_/models/fmnist_resnet_w16.py',
    teacher_ckpt='work_dirs/teachers/teacher_cnn/epoch_6.pth',
    distill_losses=dict(loss_nkd=dict(type='NKDLoss', tau=1.0, gamma=1.5)),
)
