# CSKD, DeiT-S with distillation token (student) <- RegNetY-16GF (teacher); ImageNet-1k, 224 px,
# 300 epochs, DeiT recipe, CKF linear. Paper top-1 (appendix Table 10): 82.2, 82.3 with ensemble.
_base_ = ['../_base_/cskd_imagenet.py']

model = dict(
    teacher_ckpt='checkpoints/regnety_160_mmpretrain.pth',  # docs/cskd.md: timm -> this layout
    student=dict(backbone=dict(arch='deit-small'), head=dict(in_channels=384)),
)
