# The CNN student (8, 16, 32 channels; maps 14x14, 7x7, 4x4) alone: the baseline of every CNN row.
_base_ = ['../_base_/fmnist_results.py', '../_base_/models/fmnist_resnet_w8.py']
