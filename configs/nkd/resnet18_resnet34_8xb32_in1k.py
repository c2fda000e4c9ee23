# NKD (T=1, gamma=1.5), ResNet-18 <- ResNet-34, ImageNet-1k, 100 epochs.
_base_ = ['../_base_/imagenet_r18_100e.py']
model = dict(distill_losses=dict(loss_nkd=dict(type='NKDLoss', tau=1.0, gamma=1.5)))
