# DeiT-Ti with distillation token <- RegNetY-16GF (timm), hard distillation, ImageNet-1k,
# DeiT's 300-epoch recipe: (1 - alpha) * CE + alpha * CE(dist, argmax teacher), alpha = 0.5.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    '../_base_/default_runtime.py',
]
teacher_ckpt = 'checkpoints/regnety_160_mmpretrain.pth'
model = dict(
    type='ClassificationDistiller',
    student=dict(
        type='ImageClassifier',
        backbone=dict(type='DistilledVisionTransformer', arch='deit-tiny', img_size=224,
                      patch_size=16, drop_path_rate=0.1),
        neck=None,
        head=dict(type='DistillTokenClsHead', num_classes=1000, in_channels=192,
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'))),
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(type='TIMMBackbone', model_name='regnety_160', pretrained=False,
                      features_only=True, out_indices=(4, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=3024)),
    teacher_ckpt=teacher_ckpt,
    # one preprocessor for both models: the teacher sees the student's mixed batch (DeiT's
    # mixup 0.8 / cutmix 1.0, one of them per batch); seeded, see the end of this file
    data_preprocessor=dict(
        type='SeededClsDataPreprocessor', num_classes=1000,
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True,
        batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                      dict(type='CutMix', alpha=1.0)])),
    student_loss_weight=0.5,
    distill_losses=dict(loss_deit=dict(type='DeiTLoss', mode='hard', loss_weight=0.5)),
)
default_scope = 'mmkd'
# Batches that a teacher-logit cache can replay (the _cached variant, docs/teacher_cache.md):
# global batches of 512 cut from a seeded order; each image's RandAugment/erasing draws under its
# own seed, mixup/cutmix (mmpretrain's, 50/50) per group of 64 (the recipe's per-GPU batch) under
# the group's seed. The same images on 8 GPUs x 64 as on 4 x 128 (batch_size = 512 / GPUs).
randomness = dict(seed=0)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='SeededDataset', dataset={{_base_.train_dataloader.dataset}}),
    batch_sampler=dict(type='GlobalBatchSampler', global_batch_size=512, mix_group=64))
