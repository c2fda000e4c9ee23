# KD on Fashion-MNIST from a teacher-logit cache (docs/teacher_cache.md): the CNN teacher is not
# run in training. Its logits, and the seed of every sample's random augmentation, were stored by
# one teacher pass per epoch; training replays each augmentation and reads the logits. All 10
# logits are cached (--topk 10), so the KD loss is the online one. Make the cache first:
#   python tools/cache_teacher_logits.py configs/kd/vit-small_resnet-small_1xb128_fmnist.py \
#       --epochs 5 --topk 10   # -> work_dirs/vit-small_resnet-small_1xb128_fmnist/teacher_logits
_base_ = ['./vit-small_resnet-small_1xb128_fmnist.py']
model = dict(teacher=None, teacher_ckpt=None, logit_cache=True)
train_dataloader = dict(
    # the wrapped dataset must be the one the cache was made from (same pipeline, same samples)
    dataset=dict(_delete_=True, type='TeacherLogitsDataset',
                 dataset={{_base_.train_dataloader.dataset}},
                 cache='work_dirs/vit-small_resnet-small_1xb128_fmnist/teacher_logits'),
    # yields (epoch, index): the epoch reaches the dataset also in persistent workers
    sampler=dict(_delete_=True, type='EpochIndexSampler',
                 sampler={{_base_.train_dataloader.sampler}}),
)
