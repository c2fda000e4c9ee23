# The ViT student alone (width 64, 4 blocks): the baseline of every ViT method.
_base_ = ['../fmnist/vit-small_fmnist.py']
