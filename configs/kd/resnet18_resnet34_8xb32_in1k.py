# KD (Hinton, T=1), ResNet-18 <- ResNet-34, ImageNet-1k, 100 epochs.
_base_ = ['../_base_/imagenet_r18_100e.py']
model = dict(distill_losses=dict(loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=1.0)))
