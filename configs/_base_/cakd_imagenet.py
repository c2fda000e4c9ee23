# Cross-Architecture KD (Liu et al., ECCV 2022) on ImageNet-1k: CNN student <- ViT-B/16 teacher.
# The paper's schedule: 120 epochs, SGD lr 0.1 at batch 256 (8 GPUs x 32), momentum 0.9,
# weight decay 1e-4, lr x0.1 at epochs 30/60/90, students trained from scratch.
# Each configs/cakd/*.py sets the student, its tapped map and channels. How to run: docs/cakd.md.
#
# Student step (every iteration): CE + L_proj1 + L_proj2 + lambda * L_MVG, on multi-view inputs.
# Discriminator step (every 5th iteration): L_MAD, with its own optimizer.
_base_ = ['./default_runtime.py']

# ---- data: mmpretrain's ResNet ImageNet pipeline (imagenet_bs32), written out ------------------
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(num_classes=1000, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=8, persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=32, num_workers=8, persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

# ---- model ---------------------------------------------------------------------------------
# ViT-B/16 (ImageNet-21k pre-trained, 1k fine-tuned at 384 px: mmpretrain's
# vit-base-p16_in21k-pre_3rdparty_in1k-384px, 85.43 top-1), run at 224 px like the student:
# 14x14 tokens; its pos_embed is resized from 24x24 when the checkpoint is loaded. Download:
# https://download.openmmlab.com/mmclassification/v0/vit/finetune/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_20210928-98e8652b.pth
teacher_ckpt = 'checkpoints/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_20210928-98e8652b.pth'
model = dict(
    type='CrossArchDistiller',
    student='mmpretrain::resnet/resnet50_8xb32_in1k.py',  # set by each config
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer', arch='b', img_size=224, patch_size=16),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=768)),
    teacher_ckpt=teacher_ckpt,
    teacher_norm=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),  # Google ViT's
    # h_S: a stride-16 student map, 14x14 at 224 px like the teacher's tokens (the paper's
    # 256x196 h_S is ResNet-18's layer3); set by each config
    student_taps=dict(feat='backbone.layer3'),
    # Q/K/V of the last block (B, 1 + 196, 3 x 768) and the tokens after the final LayerNorm
    teacher_taps=dict(qkv='backbone.layers.11.attn.qkv', tokens='backbone.ln1'),
    distill_losses=dict(
        loss_cakd=dict(type='CAKDLoss', s_channels=1024, t_dims=768, t_heads=12,
                       window=4, gl_dropout=0.1, sub_prob=0.5, lambda_adv=1.0)),
    # each sample transformed with probability 0.5 (crop+rotation, colour, noise, patch mask)
    multi_view=dict(prob=0.5),
    d_interval=5,
    # robustness check: set noisy_eval=dict() and add to val_evaluator
    # dict(type='PredFieldMetric', field='noisy', metric=dict(type='Accuracy', topk=(1, 5)),
    #      hint='set noisy_eval in the CrossArchDistiller')
    noisy_eval=None,
    data_preprocessor=data_preprocessor,
)

# ---- optimisation: two optimizers, alternating updates ---------------------------------------
optim_wrapper = dict(
    constructor='CrossArchOptimWrapperConstructor',
    # student + PCA/GL projectors. Gradient clipping is ours: the value-relation term of L_proj1
    # is quartic in V_S and diverges within a few steps at lr 0.1 without it.
    student=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
                 clip_grad=dict(max_norm=5.0)),
    # the paper does not give the discriminator's optimizer: a usual GAN choice
    discriminator=dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.999))),
)
# distributed runs: the distiller's alternating step, gradients all-reduced per update (full
# import path: MMEngine's Runner looks wrappers up in its root registry, outside the mmkd scope)
model_wrapper_cfg = dict(type='mmkd.models.wrappers.CrossArchDDP')
# applied to both optimizers
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)

default_scope = 'mmkd'
