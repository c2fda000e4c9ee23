# KD on Fashion-MNIST with mixup and cutmix, batches replayable for a teacher-logit cache
# (docs/teacher_cache.md): every global batch of 128, its images' augmentation and the mixing
# of each group of 64 (which augment, lambda, the cutmix box, the partners) are a function of
# (seed, epoch, batch), the same in 1 or 2 processes (batch_size = 128 / processes).
_base_ = ['./vit-small_resnet-small_1xb128_fmnist.py']
randomness = dict(seed=0)
data_preprocessor = dict(
    type='SeededClsDataPreprocessor',
    batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))
train_dataloader = dict(
    dataset=dict(_delete_=True, type='SeededDataset', dataset={{_base_.train_dataloader.dataset}}),
    batch_sampler=dict(type='GlobalBatchSampler', global_batch_size=128, mix_group=64))
