# A quarter-width CNN student: the teacher's ResNet (fmnist_resnet_w16.py) with 4, 8, 16
# channels (maps 14x14, 7x7, 4x4).
_base_ = ['./fmnist_resnet_w16.py']
model = dict(backbone=dict(stem_channels=4, base_channels=4), head=dict(in_channels=16))
