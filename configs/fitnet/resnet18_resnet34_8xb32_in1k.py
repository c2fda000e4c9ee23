# FitNet hint on layer3 (256 x 14 x 14 for both) + the student's CE, ResNet-18 <- ResNet-34.
_base_ = ['../_base_/imagenet_r18_100e.py']
model = dict(
    student_taps=dict(feat='backbone.layer3'),
    teacher_taps=dict(feat='backbone.layer3'),
    distill_losses=dict(
        loss_fitnet=dict(type='FitNetLoss', s_channels=256, t_channels=256, loss_weight=1.0)),
)
