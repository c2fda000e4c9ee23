# DKD, ResNet-18 <- ResNet-34, ImageNet-1k: alpha=1, beta=0.5, T=1, warm-up over 1 epoch.
_base_ = ['../_base_/imagenet_r18_100e.py']
warmup_epochs = 1
model = dict(distill_losses=dict(loss_dkd=dict(type='DKDLoss', alpha=1.0, beta=0.5, tau=1.0)))
# DKD's factor min(epoch / warmup, 1), epoch counted from 1: linear from 1/W at epoch index 0
# to 1 at epoch index W-1.
custom_hooks = [
    dict(type='DistillScheduleHook', schedules=[
        dict(loss='loss_dkd', type='linear', begin=0, end=warmup_epochs - 1,
             start_value=1.0 / warmup_epochs, end_value=1.0)]),
]
