# The results table's CNN teacher: a CIFAR-style ResNet-18 of 3 stages (16, 32, 64 channels)
# whose stages downsample 28 -> 14 -> 7 -> 4, so its last map (64 x 4 x 4) is the ViTs' token
# grid (CSKD pools the student's patch predictions onto it).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1, stem_channels=16,
                  base_channels=16, num_stages=3, strides=(2, 2, 2), dilations=(1, 1, 1),
                  out_indices=(2, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
