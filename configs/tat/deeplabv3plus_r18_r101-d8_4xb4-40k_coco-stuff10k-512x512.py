# TaT (patch-group + anchor-point) DeepLabV3+ ResNet-18 <- DeepLabV3+ ResNet-101, coco-stuff10k.
# Tapped, as the authors: the decoder's last feature before the classifier, at 1/4 resolution
# (decode_head.sep_bottleneck: student 128 x 128 x 128, teacher 512 x 128 x 128 at 512 px).
_base_ = ['../_base_/tat_seg_coco-stuff10k.py']
model = dict(
    student='configs/_base_/models/deeplabv3plus_r18-d8_coco-stuff10k.py',
    student_taps=dict(feat='decode_head.sep_bottleneck'),
    distill_losses=dict(loss_tat=dict(s_channels=128)),
)
