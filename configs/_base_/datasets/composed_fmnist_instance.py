# The composed Fashion-MNIST set as a COCO instance set for mmdet (docs/composed_fmnist.md):
# 128 x 128 canvases, 10 classes, 2000 train / 500 val canvases, boxes and RLE masks of the
# visible part of every item. ComposedFMNISTCocoDataset makes the set in data_root on first
# use and reuses it afterwards; `compose` holds the set's options (empty: defaults).
#
# Grey, one channel, Fashion-MNIST's statistics: see composed_fmnist_semantic.py.
custom_imports = dict(imports=['mmkd.downstream'], allow_failed_imports=False)
dataset_type = 'ComposedFMNISTCocoDataset'
data_root = 'data/composed_fmnist'
compose = dict()  # ComposeConfig fields, e.g. dict(train_images=200); {} = the default set
image_size = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # the identity at 128 px, but it records scale_factor, which the test-time rescale of
    # boxes and masks reads; a backbone config may set another scale (the ViT: 126 px)
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=0,  # see composed_fmnist_semantic.py
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', compose=compose,
                 filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', compose=compose,
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
# the json the set was written with: its areas are mask pixel counts (what COCO's small/medium
# split reads), which a conversion from the loaded boxes would replace by box areas
val_evaluator = dict(type='CocoMetric', ann_file=data_root + '/annotations/instances_val.json',
                     metric=['bbox', 'segm'], format_only=False)
test_evaluator = val_evaluator
