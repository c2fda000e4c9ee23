# A half-width CNN student: the teacher's ResNet (fmnist_resnet_w16.py) with 8, 16, 32
# channels (maps 14x14, 7x7, 4x4).
_base_ = ['./fmnist_resnet_w16.py']
model = dict(backbone=dict(stem_channels=8, base_channels=8), head=dict(in_channels=32))
