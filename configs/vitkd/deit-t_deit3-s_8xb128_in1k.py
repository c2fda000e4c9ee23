# ViTKD, DeiT-T (student) <- DeiT III-S pre-trained on ImageNet-21k (teacher); ImageNet-1k,
# 224 px, 300 epochs. Paper: 76.06 top-1 (DeiT-T alone: 74.42).
_base_ = [
    '../_base_/datasets/imagenet_deit_224.py',
    '../_base_/schedules/imagenet_deit_300e.py',
    '../_base_/models/vitkd_deit_in1k.py',
    '../_base_/default_runtime.py',  # last: default_scope='mmkd'
]

model = dict(
    student=dict(backbone=dict(arch='deit-tiny'), head=dict(in_channels=192)),
    # an mmpretrain model name: the architecture of exactly this checkpoint
    teacher='deit3-small-p16_in21k-pre_3rdparty_in1k',
    teacher_ckpt='checkpoints/deit3-small-p16_in21k-pre_3rdparty_in1k.pth',
    distill_losses=dict(loss_vitkd=dict(s_dims=192, t_dims=384)),
)
