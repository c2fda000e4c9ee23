# ViT student <- CNN teacher, DKD with the paper's ImageNet setting: alpha 1, beta 0.5, T=1 and a
# 1-epoch warm-up, min(epoch / 1, 1) = 1 from the first epoch on (configs/dkd/).
_base_ = ['../_base_/fmnist_results.py']
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_vit_p7_w64.py',
    teacher='configs/_base_/models/fmnist_resnet_w16.py',
    teacher_ckpt='work_dirs/teachers/teacher_cnn/epoch_6.pth',
    distill_losses=dict(loss_dkd=dict(type='DKDLoss', alpha=1.0, beta=0.5, tau=1.0)),
)
