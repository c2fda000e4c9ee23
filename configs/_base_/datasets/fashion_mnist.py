# Fashion-MNIST (60k train / 10k test, 28x28 grey, 10 classes), prepared by tools/setup_env.sh.
dataset_type = 'FashionMNIST'
data_root = 'data/fashion_mnist'

data_preprocessor = dict(num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

# Loading in the main process (num_workers=0) is 2.3x faster per iteration here than 2 workers:
# these 28x28 images cost less to pack than the workers' per-sample DataSample pickling, and
# on 2 cores the workers take the cores the model needs (docs/benchmarks.md, quickstart).

train_dataloader = dict(
    batch_size=128,
    num_workers=0,  # in the main process: see above
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=0,  # in the main process: see above
    # mmpretrain 1.2's MNIST datasets pick their files by test_mode, not by split: without
    # test_mode=True, split='test' silently loads the 60000 training images
    dataset=dict(type=dataset_type, data_root=data_root, split='test', test_mode=True,
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
