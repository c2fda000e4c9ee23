# Backbone transfer on real images: UPerNet semantic segmentation on the composed Fashion-MNIST
# set (128 px, 11 classes) with the results table's CNN student as backbone (ResNet_CIFAR-18,
# 4/8/16 channels, 1 grey channel, pre-trained at 28 px), as the paper-style config
# upernet_r18-student_4xb4-160k_ade20k-512x512.py: the three stages (strides 2, 4, 8) ->
# UPerHead (pyramid pooling on the last) + FCN auxiliary head on the middle stage.
#   python tools/train.py configs/downstream/composed_fmnist/upernet_fmnist-resnet-w4_1xb8-6e_composed-fmnist-128x128.py
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH; random init:
# upernet_fmnist-resnet-w4-scratch_1xb8-6e_composed-fmnist-128x128.py.
# Input: grey, 1 channel, Fashion-MNIST's statistics (the student's own input).
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    '../../_base_/composed_fmnist_seg.py',
]
backbone_ckpt = 'work_dirs/students/fmnist-resnet-w4_backbone.pth'  # extract_student.py --backbone

norm_cfg = dict(type='BN', requires_grad=True)  # one process; SyncBN needs a process group
data_preprocessor = dict(mean=[72.94], std=[90.02], bgr_to_rgb=False, size=(128, 128))
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
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
    decode_head=dict(in_channels=[4, 8, 16], in_index=[0, 1, 2], channels=64, num_classes=11,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=8, in_index=1, channels=32, num_classes=11,
                        norm_cfg=norm_cfg))

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0))
