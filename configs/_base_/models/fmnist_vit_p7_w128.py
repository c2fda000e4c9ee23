# The results table's ViT teacher: the student's 4x4 token grid (patch 7), width 128, 6 blocks.
_base_ = ['./fmnist_vit_p7_w64.py']
model = dict(
    backbone=dict(arch=dict(embed_dims=128, num_layers=6, num_heads=4, feedforward_channels=256)),
    head=dict(in_channels=128),
)
