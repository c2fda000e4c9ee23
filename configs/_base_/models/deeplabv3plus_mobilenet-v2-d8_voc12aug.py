# DeepLabV3+ MobileNetV2 (mmseg's m-v2-d8, ImageNet-pretrained backbone) with 21 Pascal VOC
# classes: a TaT student. Its last backbone stage (backbone.layer7) is 320 x H/8 x W/8.
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb4-160k_ade20k-512x512.py'
model = dict(decode_head=dict(num_classes=21), auxiliary_head=dict(num_classes=21))
