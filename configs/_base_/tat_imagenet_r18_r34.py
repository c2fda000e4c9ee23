# TaT on ImageNet-1k, ResNet-18 <- ResNet-34, authors' setting (REFERENCE.md, TaT): one-to-all TaT
# on layer4 (512 x 7 x 7 for both), the student starting from ImageNet-pretrained weights.
# Schedule: this repository's ResNet ImageNet recipe (imagenet_r18_100e.py); the authors'
# torchdistill schedule is not part of the supplement/REFERENCE.
_base_ = ['./imagenet_r18_100e.py']
# The student's ImageNet-pretrained weights (whole classifier, head included), downloaded beforehand.
student_ckpt = 'checkpoints/resnet18_8xb32_in1k_20210831-fbbb1da6.pth'
model = dict(
    # mmpretrain's ResNet-18 classifier (mmpretrain::_base_/models/resnet18.py), inline so that it
    # can carry the init_cfg
    student=dict(
        _delete_=True,
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ), style='pytorch'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)),
        init_cfg=dict(type='Pretrained', checkpoint=student_ckpt)),
    student_taps=dict(feat='backbone.layer4'),
    teacher_taps=dict(feat='backbone.layer4'),
)
