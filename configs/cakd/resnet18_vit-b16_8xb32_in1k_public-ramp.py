# As resnet18_vit-b16_8xb32_in1k.py, with the public code's distillation-weight ramp
# w = min(max(epoch - 25, 0) / 50, 0.2) on the CAKD loss (the paper has no ramp).
# linear from 0 at epoch 25 to 0.2 at epoch 35 is exactly that (0.2 = (35 - 25) / 50); epoch
# is the number of completed epochs.
_base_ = ['./resnet18_vit-b16_8xb32_in1k.py']
custom_hooks = [
    dict(type='DistillScheduleHook',
         schedules=[dict(loss='loss_cakd', attr='weight_scale', type='linear', begin=25, end=35,
                         start_value=0.0, end_value=0.2, by_epoch=True)]),
]
