# Backbone transfer on real images: Mask R-CNN on the composed Fashion-MNIST set (128 px canvases,
# 10 classes) with the results table's ViT student as backbone (configs/_base_/models/
# fmnist_vit_p7_w64.py: patch 7, width 64, 4 blocks, 1 grey channel, pre-trained at 28 px),
# ViTDet-like as the paper config mask-rcnn_deit-s-student_simple-fpn_lsj-100e_coco.py (the
# plain ViT's last map + a simple feature pyramid), scaled to the student and to a CPU.
#   python tools/model_converters/extract_student.py work_dirs/results/vit_kd_seed0/epoch_3.pth \
#       --backbone work_dirs/students/fmnist-vit-p7-w64_backbone.pth
#   python tools/train.py configs/downstream/composed_fmnist/mask-rcnn_fmnist-vit-p7-w64_simple-fpn_1xb8-6e_composed-fmnist-128x128.py
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH; random init:
# mask-rcnn_fmnist-vit-p7-w64-scratch_simple-fpn_1xb8-6e_composed-fmnist-128x128.py.
#
# Input: grey, 1 channel, Fashion-MNIST's statistics: the student's own input, so its
# patch embedding loads unchanged (strictly, every key and shape) and sees what it was trained
# on. Canvases are resized 128 -> 126 px, so that 18 x 18 patches of 7 px tile the image
# exactly (predictions are mapped back to 128 px by mmdet's rescale); the student's 4 x 4
# pos_embed is kept as trained and interpolated (bicubic) to the 18 x 18 grid at every forward,
# as PlainViT does for the DeiT configs (ViTDet's absolute position embeddings).
#
# Pyramid: the paper's (4, 2, 1, 0.5) takes a 1/16 ViT map to strides 4..32; the patch-7 map
# is already at 1/7, so one octave less, (2, 1, 0.5), gives strides 3.5, 7, 14 (36, 18, 9
# cells), plus two max-pooled levels (28, 56) for the RPN, which anchors at those strides.
# Heads: mmdet's standard Mask R-CNN heads at 64 channels (the backbone is 64 wide), a 2-conv
# mask head; the paper config's 4conv1fc GN box head would cost more than the rest of the model
# on a CPU. CPU budget (measured: 1.17 -> 0.54 s/iter): 64 sampled RoIs per image (canvases
# hold 2-5 items: 16 positives are plenty), 500 proposals per level before the RPN's NMS, and
# RoIAlign with 2 x 2 samples per bin (mmdet's default 0 = adaptive takes up to 25 per bin at
# these fine strides; its CPU backward was half of the step).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../../_base_/composed_fmnist_det.py',
]
backbone_ckpt = 'work_dirs/students/fmnist-vit-p7-w64_backbone.pth'  # extract_student.py --backbone

image_size = (126, 126)  # 18 x 18 patches of 7 px
strides = [3.5, 7, 14, 28, 56]
channels = 64
model = dict(
    data_preprocessor=dict(mean=[72.94], std=[90.02], bgr_to_rgb=False, pad_size_divisor=7),
    backbone=dict(
        _delete_=True,
        type='PlainViT',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128),
        img_size=28,  # the student's: pos_embed (4 x 4 + cls) loads as is, resized on the fly
        patch_size=7,
        in_channels=1,
        out_indices=(-1, ),
        drop_rate=0.0,
        drop_path_rate=0.0,
        init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=64,
        out_channels=channels,
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=5,
        norm_cfg=dict(type='LN2d')),
    rpn_head=dict(in_channels=channels, feat_channels=channels,
                  anchor_generator=dict(strides=strides)),
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=channels,
                                featmap_strides=strides[:4]),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=10),
        mask_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=channels,
                                featmap_strides=strides[:4]),
        mask_head=dict(num_convs=2, in_channels=channels, conv_out_channels=32,
                       num_classes=10)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=300),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
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
