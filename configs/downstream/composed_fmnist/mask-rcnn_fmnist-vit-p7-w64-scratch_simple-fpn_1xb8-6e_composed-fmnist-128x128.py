# The "random" row of the ViT backbone transfer: mask-rcnn_fmnist-vit-p7-w64_simple-fpn_...py with
# the backbone initialised as the classification student was before its training
# (mmpretrain's VisionTransformer init: init_cfg=None, truncated-normal pos_embed), not loaded.
_base_ = './mask-rcnn_fmnist-vit-p7-w64_simple-fpn_1xb8-6e_composed-fmnist-128x128.py'
model = dict(backbone=dict(init_cfg=None))
