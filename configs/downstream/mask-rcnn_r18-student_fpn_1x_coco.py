# Mask R-CNN + FPN on COCO, 1x schedule, backbone = a distilled ResNet-18 student.
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './mask-rcnn_r50-student_fpn_1x_coco.py'

backbone_ckpt = 'work_dirs/students/resnet18_backbone.pth'  # extract_student.py --backbone

model = dict(
    backbone=dict(depth=18, init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(in_channels=[64, 128, 256, 512]))
