# Plain training of the small ViT on Fashion-MNIST (baseline student / ViT teacher).
_base_ = [
    '../_base_/models/fmnist_vit_small.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fmnist_adamw.py',
    '../_base_/default_runtime.py',
]
