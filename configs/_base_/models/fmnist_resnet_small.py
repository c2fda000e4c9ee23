# A small CIFAR-style ResNet for 28x28 grey images: 3 stages (16, 32, 64 channels),
# last feature map 64 x 7 x 7, about 0.2M parameters.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1, stem_channels=16,
                  base_channels=16, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                  out_indices=(2, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
