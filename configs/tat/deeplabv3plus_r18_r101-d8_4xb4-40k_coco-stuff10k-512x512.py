# TaT (patch-group + anchor-point) DeepLabV3+ ResNet-18 <- DeepLabV3+ ResNet-101, coco-stuff10k.
# Tapped: the last backbone stage of each (student backbone.layer4: 512 x 64 x 64; teacher
# backbone.layer4: 2048 x 64 x 64), i.e. the features the ASPP head reads.
_base_ = ['../_base_/tat_seg_coco-stuff10k.py']
model = dict(
    student='configs/_base_/models/deeplabv3plus_r18-d8_coco-stuff10k.py',
    student_taps=dict(feat='backbone.layer4'),
    distill_losses=dict(loss_tat=dict(s_channels=512)),
)
