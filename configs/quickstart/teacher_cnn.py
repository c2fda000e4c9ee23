# The CNN teacher: the small CIFAR-style ResNet (64 x 7 x 7 last map).
_base_ = ['../fmnist/resnet-small_fmnist.py']
