# Backbone transfer on real images: UPerNet semantic segmentation on the composed Fashion-MNIST
# set (128 px, 11 classes) with the results table's ViT student as backbone (patch 7, width
# 64, 4 blocks, 1 grey channel, pre-trained at 28 px), as the paper config
# upernet_deit-s-student_mln_8xb2-160k_ade20k-512x512.py: every block's map (the paper takes
# blocks 3/6/9/12 of 12; here 1/2/3/4 of 4) -> MultiLevelNeck -> UPerHead + FCN auxiliary head.
#   python tools/train.py configs/downstream/composed_fmnist/upernet_fmnist-vit-p7-w64_mln_1xb8-6e_composed-fmnist-128x128.py
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH; random init:
# upernet_fmnist-vit-p7-w64-scratch_mln_1xb8-6e_composed-fmnist-128x128.py.
#
# Input, 126 px resize, pos_embed interpolation 4 x 4 -> 18 x 18: as
# mask-rcnn_fmnist-vit-p7-w64_simple-fpn_1xb8-6e_composed-fmnist-128x128.py (mmseg maps the
# predictions back to the 128 px labels). Neck scales: the paper's (4, 2, 1, 0.5) take 1/16 maps
# to strides 4..32; from the 1/7 map one octave less, (2, 1, 0.5, 0.25): strides 3.5..28.
# Heads at 64 channels (the backbone's width).
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    '../../_base_/composed_fmnist_seg.py',
]
backbone_ckpt = 'work_dirs/students/fmnist-vit-p7-w64_backbone.pth'  # extract_student.py --backbone

crop_size = (126, 126)  # 18 x 18 patches of 7 px
norm_cfg = dict(type='BN', requires_grad=True)  # one process; SyncBN needs a process group
data_preprocessor = dict(mean=[72.94], std=[90.02], bgr_to_rgb=False, size=crop_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='PlainViT',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128),
        img_size=28,  # the student's: pos_embed (4 x 4 + cls) loads as is, resized on the fly
        patch_size=7,
        in_channels=1,
        out_indices=(0, 1, 2, 3),
        drop_rate=0.0,
        drop_path_rate=0.0,
        init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(type='MultiLevelNeck', in_channels=[64, 64, 64, 64], out_channels=64,
              scales=[2, 1, 0.5, 0.25]),
    decode_head=dict(in_channels=[64, 64, 64, 64], channels=64, num_classes=11,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=32, num_classes=11, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),  # after the resize: evaluated on the 128 px labels
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={'pos_embed': dict(decay_mult=0.0), 'cls_token': dict(decay_mult=0.0)}))
