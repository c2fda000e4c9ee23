# TaT for semantic segmentation on COCO-Stuff10k (mmseg dataset, pipeline, 512x512 crops, 40k
# schedule as mmseg's 40k COCO-Stuff10k models). Paper values (REFERENCE.md, TaT): alpha=0.6,
# beta=gamma=1, n=m=32 (2x2 patches of the 64x64 map), 512 heads (2 patches per group); the
# anchor grid is not given for COCO-Stuff: VOC's 32x32 is kept.
_base_ = [
    'mmseg::_base_/datasets/coco-stuff10k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# A DeepLabV3+ R101 trained on COCO-Stuff10k with configs/_base_/models/deeplabv3plus_r101-d8_coco-stuff10k.py
teacher_ckpt = 'checkpoints/deeplabv3plus_r101-d8_coco-stuff10k.pth'
crop_size = (512, 512)
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size)
model = dict(
    _scope_='mmkd',  # see tat_seg_voc12aug.py
    type='SegmentationDistiller',
    teacher='configs/_base_/models/deeplabv3plus_r101-d8_coco-stuff10k.py',
    teacher_ckpt=teacher_ckpt,
    data_preprocessor=data_preprocessor,
    # the authors distil the decoder's last feature before the classifier (1/4 resolution),
    # not the backbone: the output of DeepLabV3+'s sep_bottleneck, the input of its conv_seg
    # (512 channels for mmseg's R101 head). They take it before the block's final ReLU; mmcv's
    # ConvModule applies that ReLU in place, so any hook sees it after the ReLU.
    teacher_taps=dict(feat='decode_head.sep_bottleneck'),
    distill_losses=dict(
        loss_tat=dict(type='TaTSegLoss', t_channels=512, patches=(32, 32), heads=512,
                      anchors=(32, 32), alpha=0.6, beta=1.0, gamma=1.0)),
)
