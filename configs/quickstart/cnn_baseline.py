# The CNN student alone: the small ResNet at half width (8, 16, 32 channels).
_base_ = ['../fmnist/resnet-small_fmnist.py']
model = dict(backbone=dict(stem_channels=8, base_channels=8), head=dict(in_channels=32))
