# DeepLabV3+ for the composed Fashion-MNIST set (128 px, grey, 11 classes), sized for a CPU:
# mmseg's DeepLabV3+ (ResNetV1c, output stride 8, depthwise-separable ASPP, 1/4-resolution
# decoder) with a half-width ResNet-18 (32..256 channels) from scratch. At 128 px the last
# backbone map is 16 x 16: the ASPP rates are mmseg's (12, 24, 36) for 64 x 64 maps scaled by
# 1/4, so that no branch samples only padding; the decoder's channels (and so the TaT tap,
# decode_head.sep_bottleneck, 64 x 32 x 32) scale with the width.
_base_ = 'mmseg::_base_/models/deeplabv3plus_r50-d8.py'
norm_cfg = dict(type='BN', requires_grad=True)  # one process; SyncBN needs a process group
width = 32
# grey canvases, Fashion-MNIST's statistics (configs/_base_/datasets/composed_fmnist_semantic.py)
data_preprocessor = dict(mean=[72.94], std=[90.02], bgr_to_rgb=False, size=(128, 128))
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(depth=18, in_channels=1, stem_channels=width, base_channels=width,
                  norm_cfg=norm_cfg),
    decode_head=dict(in_channels=8 * width, channels=64, dilations=(1, 3, 6, 9),
                     c1_in_channels=width, c1_channels=12, num_classes=11, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=4 * width, channels=32, num_classes=11, norm_cfg=norm_cfg))
