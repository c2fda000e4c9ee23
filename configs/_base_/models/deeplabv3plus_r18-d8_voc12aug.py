# DeepLabV3+ ResNet-18 (mmseg's r18-d8, ImageNet-pretrained backbone) with 21 Pascal VOC classes:
# a TaT student. Its last backbone stage (backbone.layer4) is 512 x H/8 x W/8.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py'
model = dict(decode_head=dict(num_classes=21), auxiliary_head=dict(num_classes=21))
