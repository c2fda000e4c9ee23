# The ViT teacher: the student's 7x7 token grid, wider and deeper (width 128, 6 blocks).
_base_ = ['../fmnist/vit-small_fmnist.py']
model = dict(
    backbone=dict(arch=dict(embed_dims=128, num_layers=6, num_heads=4, feedforward_channels=256)),
    head=dict(in_channels=128))
