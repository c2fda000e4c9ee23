# ViTKD, DeiT-S (student) <- DeiT III-B pre-trained on ImageNet-21k (teacher); ImageNet-1k,
# 224 px, 300 epochs. Paper: 81.95 top-1 (DeiT-S alone: 80.55).
_base_ = [
    '../_base_/datasets/imagenet_deit_224.py',
    '../_base_/schedules/imagenet_deit_300e.py',
    '../_base_/models/vitkd_deit_in1k.py',
    '../_base_/default_runtime.py',  # last: default_scope='mmkd'
]

model = dict(
    student=dict(backbone=dict(arch='deit-small'), head=dict(in_channels=384)),
    # an mmpretrain model name: the architecture of exactly this checkpoint
    teacher='deit3-base-p16_in21k-pre_3rdparty_in1k',
    teacher_ckpt='checkpoints/deit3-base-p16_in21k-pre_3rdparty_in1k.pth',
    distill_losses=dict(loss_vitkd=dict(s_dims=384, t_dims=768)),
)
