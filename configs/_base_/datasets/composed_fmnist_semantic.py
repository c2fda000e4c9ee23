# The composed Fashion-MNIST set as an mmseg semantic set (docs/composed_fmnist.md): 128 x 128
# canvases of real Fashion-MNIST items, 11 classes (0 = background, 1..10 the items),
# 2000 train / 500 val canvases. ComposedFMNISTSegDataset makes the set in data_root on first
# use (about 5 s) and reuses it afterwards; `compose` holds the set's options (empty: defaults).
#
# Grey, one channel: the canvases are grey replicated into 3 channels, and the results-table
# students whose backbones are transferred here were trained on 1-channel Fashion-MNIST, so
# the image is read as grey; the models normalise it with Fashion-MNIST's statistics
# (mean 72.94, std 90.02, their data_preprocessor): a pretrained first layer sees the input
# it was trained on. (As in mmseg, the data preprocessor is part of the model configs.)
custom_imports = dict(imports=['mmkd.downstream'], allow_failed_imports=False)
dataset_type = 'ComposedFMNISTSegDataset'
data_root = 'data/composed_fmnist'
compose = dict()  # ComposeConfig fields, e.g. dict(train_images=200); {} = the default set
crop_size = (128, 128)
num_classes = 11

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    # canvases are already 128 px: flips are the only augmentation (items are placed at
    # random, at random sizes, so scale/translation variety is in the data itself)
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]

# num_workers=0: on 2 shared cores worker processes take the cores the model needs, and a
# 128 px PNG decodes in well under a millisecond
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', compose=compose,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', compose=compose,
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
