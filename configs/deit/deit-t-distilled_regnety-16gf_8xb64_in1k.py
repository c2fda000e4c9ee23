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
    student_loss_weight=0.5,
    distill_losses=dict(loss_deit=dict(type='DeiTLoss', mode='hard', loss_weight=0.5)),
)
default_scope = 'mmkd'
