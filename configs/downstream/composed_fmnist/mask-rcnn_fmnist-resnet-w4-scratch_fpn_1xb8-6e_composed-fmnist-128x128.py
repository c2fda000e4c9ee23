# The "random" row of the CNN backbone transfer: mask-rcnn_fmnist-resnet-w4_fpn_...py with the
# backbone initialised as the classification student was before its training (mmpretrain's
# ResNet init: Kaiming convs, unit BN, zero-initialised last BN of every block), not loaded.
_base_ = './mask-rcnn_fmnist-resnet-w4_fpn_1xb8-6e_composed-fmnist-128x128.py'
model = dict(
    backbone=dict(
        zero_init_residual=True,
        init_cfg=[dict(type='Kaiming', layer=['Conv2d']),
                  dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]))
