# As mask-rcnn_deit-s-student_simple-fpn_lsj-100e_coco.py with a DeiT-T (192-d) student.
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './mask-rcnn_deit-s-student_simple-fpn_lsj-100e_coco.py'

backbone_ckpt = 'work_dirs/students/deit-t_backbone.pth'  # extract_student.py --backbone

model = dict(
    backbone=dict(arch='deit-tiny',
                  init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(in_channels=192))
