# TaT (one-to-all, layer4 512x7x7), ResNet-18 <- ResNet-34, ImageNet-1k: 0.1 * CE + 0.2 * TaT.
# Projections: Conv3x3 (no bias) + BN for q and v; the teacher's layer4 map is the key as is.
_base_ = ['../_base_/tat_imagenet_r18_r34.py']
model = dict(
    student_loss_weight=0.1,
    distill_losses=dict(
        loss_tat=dict(type='TaTLoss', s_channels=512, t_channels=512, proj_kernel=3,
                      key_proj=False, loss_weight=0.2)),
)
