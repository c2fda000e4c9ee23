# mmpretrain's ResNet ImageNet recipe (8 GPUs x 32, SGD 0.1, 100 epochs, steps at 30/60/90).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    './default_runtime.py',
    './models/imagenet_r18_r34.py',
]
data_preprocessor = dict(num_classes=1000, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
default_scope = 'mmkd'
