# DeiT-Ti (distillation token) <- RegNetY-16GF from a teacher-logit batch cache: the teacher
# (~80 % of an online step) does not run in training. The cache holds its logits of every
# mixed image (mixup/cutmix replayed) of the 300 epochs: top-10 of 1000 in float16 is 44 bytes
# per image per epoch, 16.9 GB for ImageNet-1k x 300 (docs/teacher_cache.md: when it pays).
# Written by every GPU of a job, resumable:
#   torchrun --nproc_per_node 8 tools/cache_teacher_logits.py \
#       configs/deit/deit-t-distilled_regnety-16gf_8xb64_in1k.py --topk 10 --fp16 \
#       --launcher pytorch   # -> work_dirs/deit-t-distilled_regnety-16gf_8xb64_in1k/teacher_logits
_base_ = ['./deit-t-distilled_regnety-16gf_8xb64_in1k.py']
model = dict(teacher=None, teacher_ckpt=None, logit_cache=True)
train_dataloader = dict(
    dataset=dict(type='BatchTeacherLogitsDataset',
                 cache='work_dirs/deit-t-distilled_regnety-16gf_8xb64_in1k/teacher_logits'))
