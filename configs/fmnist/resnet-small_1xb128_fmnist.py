# Plain training of the small CNN on Fashion-MNIST (the quickstart's CNN teacher).
_base_ = [
    '../_base_/models/fmnist_resnet_small.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fmnist_adamw.py',
    '../_base_/default_runtime.py',
]
