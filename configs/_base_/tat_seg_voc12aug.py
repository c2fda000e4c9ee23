# TaT for semantic segmentation on Pascal VOC 2012 aug (mmseg dataset, pipeline, 40k schedule,
# 512x512 crops): DeepLabV3+ ResNet-101 teacher, patch-group + anchor-point TaT on the last
# backbone stage (the ASPP head's input, 2048 x 64 x 64 for the teacher), plus the student's
# own decode/auxiliary losses. Leaf configs add the student and its tap.
# Paper values (REFERENCE.md, TaT): alpha=0.1, beta=1, gamma=0.4, n=m=16 (4x4 patches), 64 heads
# (4 patches per group), 32x32 anchors (2x2 pooling).
_base_ = [
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# mmseg's DeepLabV3+ R101 Pascal VOC aug 40k model (79.62 mIoU), downloaded beforehand.
teacher_ckpt = 'checkpoints/deeplabv3plus_r101-d8_512x512_40k_voc12aug_20200613_205333-faf03387.pth'
crop_size = (512, 512)
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size)
model = dict(
    # default_scope is 'mmseg': `_scope_` builds the distiller in mmkd's registry ('mmkd.<type>'
    # does not resolve from mmseg: mmkd's registry is a child of mmpretrain's, not of the root)
    _scope_='mmkd',
    type='SegmentationDistiller',
    teacher='mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py',
    teacher_ckpt=teacher_ckpt,
    data_preprocessor=data_preprocessor,
    # the authors distil the decoder's last feature before the classifier (1/4 resolution),
    # not the backbone: the output of DeepLabV3+'s sep_bottleneck, the input of its conv_seg
    # (512 channels for mmseg's R101 head). They take it before the block's final ReLU; mmcv's
    # ConvModule applies that ReLU in place, so any hook sees it after the ReLU.
    teacher_taps=dict(feat='decode_head.sep_bottleneck'),
    distill_losses=dict(
        loss_tat=dict(type='TaTSegLoss', t_channels=512, patches=(16, 16), heads=64,
                      anchors=(32, 32), alpha=0.1, beta=1.0, gamma=0.4)),
)
