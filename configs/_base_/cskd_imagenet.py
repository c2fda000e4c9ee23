# CSKD on ImageNet-1k: DeiT student with a distillation token <- RegNetY-16GF (timm regnety_160),
# DeiT's 300-epoch recipe (8 GPUs x 128 = batch 1024). Each configs/cskd/deit-*_regnety-16gf.py
# sets the student's width and the teacher checkpoint. How to run: docs/cskd.md.
#
# Loss: 0.5 * CE(cls) + 0.5 * DeiT(dist token, argmax t_global) + 1 * CSKD(patch tokens), with
# CSKD's dense target fused by CKF: r * t_dense + (1 - r) * t_global, r = 1 - epoch/300.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',  # DeiT's RandAugment/erasing
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    './default_runtime.py',
]

model = dict(
    type='ClassificationDistiller',
    student=dict(
        type='ImageClassifier',
        # out_type='raw': the head gets all tokens (cls, dist, 196 patches) for the ensemble
        backbone=dict(type='DistilledVisionTransformer', arch='deit-tiny', img_size=224,
                      patch_size=16, drop_path_rate=0.1, out_type='raw'),
        neck=None,
        # ensemble=True predicts (cls + dist + mean_patches(dist_head)) / 3 (CSKD appendix A.2);
        # both predictions are evaluated anyway (val_evaluator below)
        head=dict(type='CSKDClsHead', num_classes=1000, in_channels=192, ensemble=False,
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
                  dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]),
    # RegNetY-16GF, DeiT's teacher, as timm builds it; its classifier (head.fc) is one linear
    # layer on the average-pooled 3024x7x7 map, which CSKD applies at each of the 7x7 positions.
    # Same layout as configs/deit/: checkpoint from tools/model_converters/timm_to_mmpretrain.py.
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(type='TIMMBackbone', model_name='regnety_160', pretrained=False,
                      features_only=True, out_indices=(4, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=3024)),
    # One preprocessor for both models: mixup/cutmix live here, so the teacher sees the same
    # mixed batch (as in DeiT). DeiT's RegNetY-16GF uses this same ImageNet normalisation.
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=1000,
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True,
        batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8),
                                      dict(type='CutMix', alpha=1.0)])),
    student_loss_weight=0.5,  # 1 - alpha
    # patch tokens after the final LayerNorm (B, 2 + 196, D); the teacher's last map (B, 3024, 7, 7)
    student_taps=dict(tokens='backbone.ln1'),
    teacher_taps=dict(feat='backbone'),
    distill_losses=dict(
        # DeiT's hard distillation of the dist token against t_global (= the teacher's logits)
        loss_deit=dict(type='DeiTLoss', mode='hard', loss_weight=0.5),  # alpha
        loss_cskd=dict(type='CSKDLoss', mode='hard', loss_weight=1.0),  # w
    ),
)

# Cumulative Knowledge Fusion: r = 1 - epoch/max_epochs ('cos': cos(pi/2 * epoch/max),
# 'x2': (1 - epoch/max)^2), set on loss_cskd before every iteration, logged as cskd.ckf_ratio
custom_hooks = [
    dict(type='DistillScheduleHook',
         schedules=[dict(loss='loss_cskd', attr='ckf_ratio', type='linear', start_value=1.0,
                         end_value=0.0, by_epoch=True)]),
]

# data: 8 GPUs x 128; DeiT's repeated augmentation (3 repeats) is on; num_repeats=1 turns it off
train_dataloader = dict(batch_size=128, num_workers=8, persistent_workers=True,
                        sampler=dict(type='RepeatAugSampler', num_repeats=3, shuffle=True))
val_dataloader = dict(batch_size=128, num_workers=8, persistent_workers=True)
test_dataloader = val_dataloader
# the DeiT prediction (accuracy/*) and CSKD's patch-token ensemble (ensemble/accuracy/*)
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='PredFieldMetric', field='ensemble', metric=dict(type='Accuracy', topk=(1, 5))),
]
test_evaluator = val_evaluator

# DeiT: AdamW, lr 5e-4 * 1024 / 512, wd 0.05, no decay on norms/biases/tokens, no grad clipping,
# 5 warm-up epochs then cosine to 1e-5, 300 epochs
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 512, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0,
        custom_keys={'.cls_token': dict(decay_mult=0.0), '.dist_token': dict(decay_mult=0.0),
                     '.pos_embed': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)  # tools/train.py --auto-scale-lr for another batch

default_scope = 'mmkd'
