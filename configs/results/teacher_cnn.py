# The CNN teacher (16, 32, 64 channels; last map 64 x 4 x 4), trained alone.
_base_ = ['../_base_/fmnist_results.py', '../_base_/models/fmnist_resnet_w16.py']
