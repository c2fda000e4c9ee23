# As upernet_deit-s-student_mln_8xb2-160k_ade20k-512x512.py with a DeiT-T (192-d) student.
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './upernet_deit-s-student_mln_8xb2-160k_ade20k-512x512.py'

backbone_ckpt = 'work_dirs/students/deit-t_backbone.pth'  # extract_student.py --backbone

model = dict(
    backbone=dict(arch='deit-tiny',
                  init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(in_channels=[192, 192, 192, 192], out_channels=192),
    decode_head=dict(in_channels=[192, 192, 192, 192]),
    auxiliary_head=dict(in_channels=192))
