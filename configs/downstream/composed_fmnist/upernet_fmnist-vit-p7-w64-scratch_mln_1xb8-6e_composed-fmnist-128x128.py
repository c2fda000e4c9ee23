# The "random" row of the ViT backbone transfer (UPerNet): the backbone initialised as the
# classification student was before its training (init_cfg=None), not loaded.
_base_ = './upernet_fmnist-vit-p7-w64_mln_1xb8-6e_composed-fmnist-128x128.py'
model = dict(backbone=dict(init_cfg=None))
