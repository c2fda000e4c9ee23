# ResNet-18 student <- ResNet-34 teacher on ImageNet-1k (the standard logit-KD benchmark pair).
# Teacher weights: mmpretrain's resnet34_8xb32_in1k checkpoint, downloaded beforehand.
teacher_ckpt = 'checkpoints/resnet34_8xb32_in1k_20210831-f257d4e6.pth'
model = dict(
    type='ClassificationDistiller',
    student='mmpretrain::resnet/resnet18_8xb32_in1k.py',
    teacher='mmpretrain::resnet/resnet34_8xb32_in1k.py',
    teacher_ckpt=teacher_ckpt,
)
