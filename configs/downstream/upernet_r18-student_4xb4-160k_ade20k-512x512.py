# UPerNet on ADE20K, 160k iterations, backbone = a distilled ResNet-18 student (standard stem).
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './upernet_r50-student_4xb4-160k_ade20k-512x512.py'

backbone_ckpt = 'work_dirs/students/resnet18_backbone.pth'  # extract_student.py --backbone

model = dict(
    backbone=dict(depth=18, init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
