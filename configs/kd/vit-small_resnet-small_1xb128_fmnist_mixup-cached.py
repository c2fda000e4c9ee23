# KD with mixup and cutmix from a teacher-logit batch cache (docs/teacher_cache.md): the CNN
# teacher is not run in training; the cache holds its logits of every mixed image of every
# global batch. Make it first (any number of processes; a stopped writer continues):
#   python tools/cache_teacher_logits.py configs/kd/vit-small_resnet-small_1xb128_fmnist_mixup.py
#   # -> work_dirs/vit-small_resnet-small_1xb128_fmnist_mixup/teacher_logits
_base_ = ['./vit-small_resnet-small_1xb128_fmnist_mixup.py']
model = dict(teacher=None, teacher_ckpt=None, logit_cache=True)
train_dataloader = dict(
    # the same samples, pipeline and batches as the cache's (checked when training starts)
    dataset=dict(type='BatchTeacherLogitsDataset',
                 cache='work_dirs/vit-small_resnet-small_1xb128_fmnist_mixup/teacher_logits'))
