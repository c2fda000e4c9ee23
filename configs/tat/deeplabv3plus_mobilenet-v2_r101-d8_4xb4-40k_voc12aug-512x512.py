# TaT (patch-group + anchor-point) DeepLabV3+ MobileNetV2 <- DeepLabV3+ ResNet-101, voc12aug.
# Tapped: the last backbone stage of each (student backbone.layer7: 320 x 64 x 64; teacher
# backbone.layer4: 2048 x 64 x 64), i.e. the features the ASPP head reads.
_base_ = ['../_base_/tat_seg_voc12aug.py']
model = dict(
    student='configs/_base_/models/deeplabv3plus_mobilenet-v2-d8_voc12aug.py',
    student_taps=dict(feat='backbone.layer7'),
    distill_losses=dict(loss_tat=dict(s_channels=320)),
)
