# Backbone transfer on real images: Mask R-CNN + FPN on the composed Fashion-MNIST set (128 px,
# 10 classes) with the results table's CNN student as backbone (configs/_base_/models/
# fmnist_resnet_w4.py: mmpretrain's ResNet_CIFAR-18, 3 stages of 4, 8, 16 channels, 1 grey
# channel, pre-trained at 28 px), as the paper-style config mask-rcnn_r18-student_fpn_1x_coco.py.
#   python tools/model_converters/extract_student.py work_dirs/results/cnn_kd_seed0/epoch_3.pth \
#       --backbone work_dirs/students/fmnist-resnet-w4_backbone.pth
#   python tools/train.py configs/downstream/composed_fmnist/mask-rcnn_fmnist-resnet-w4_fpn_1xb8-6e_composed-fmnist-128x128.py
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH; random init:
# mask-rcnn_fmnist-resnet-w4-scratch_fpn_1xb8-6e_composed-fmnist-128x128.py.
#
# Input: grey, 1 channel, Fashion-MNIST's statistics (the student's own input): its stem loads
# unchanged and strictly. ResNet_CIFAR has a stride-1 stem and no max-pool, so its stages are
# at strides 2, 4, 8 (64, 32, 16 cells at 128 px); FPN adds two max-pooled levels (16, 32) and
# the RPN anchors at those strides. Heads: mmdet's standard Mask R-CNN heads at 64 channels, a
# 2-conv mask head; 64 RoIs per image, 500 proposals per level before NMS, 2 x 2 RoIAlign
# samples per bin (CPU budget, measured 1.29 -> 0.68 s/iter; see the ViT config).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../../_base_/composed_fmnist_det.py',
]
backbone_ckpt = 'work_dirs/students/fmnist-resnet-w4_backbone.pth'  # extract_student.py --backbone

strides = [2, 4, 8, 16, 32]
channels = 64
model = dict(
    data_preprocessor=dict(mean=[72.94], std=[90.02], bgr_to_rgb=False),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ResNet_CIFAR',
        depth=18,
        in_channels=1,
        stem_channels=4,
        base_channels=4,
        num_stages=3,
        strides=(2, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(0, 1, 2),
        # mmpretrain's ResNet zeroes every block's last BN after any init_cfg whose type is not
        # literally 'Pretrained': it would wipe what StrictPretrained just loaded
        zero_init_residual=False,
        init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(in_channels=[4, 8, 16], out_channels=channels, num_outs=5),
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

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0))
