# TaT + KD, ResNet-18 <- ResNet-34, ImageNet-1k: 0.5 * CE + 0.5 * KL(T=1) + 0.1 * TaT.
_base_ = ['../_base_/tat_imagenet_r18_r34.py']
model = dict(
    student_loss_weight=0.5,
    distill_losses=dict(
        loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=0.5),
        loss_tat=dict(type='TaTLoss', s_channels=512, t_channels=512, proj_kernel=3,
                      key_proj=False, loss_weight=0.1)),
)
