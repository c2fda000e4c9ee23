# ViTKD, DeiT-B (student) <- DeiT III-L pre-trained on ImageNet-21k (teacher, 24 blocks: still
# its first two and last are distilled); ImageNet-1k, 224 px, 300 epochs.
# Paper: 83.46 top-1 (DeiT-B alone: 81.76).
_base_ = [
    '../_base_/datasets/imagenet_deit_224.py',
    '../_base_/schedules/imagenet_deit_300e.py',
    '../_base_/models/vitkd_deit_in1k.py',
    '../_base_/default_runtime.py',  # last: default_scope='mmkd'
]

model = dict(
    student=dict(backbone=dict(arch='deit-base'), head=dict(in_channels=768)),
    # an mmpretrain model name: the architecture of exactly this checkpoint
    teacher='deit3-large-p16_in21k-pre_3rdparty_in1k',
    teacher_ckpt='checkpoints/deit3-large-p16_in21k-pre_3rdparty_in1k.pth',
    distill_losses=dict(loss_vitkd=dict(s_dims=768, t_dims=1024)),
)
