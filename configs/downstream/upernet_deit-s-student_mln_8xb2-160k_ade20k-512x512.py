# ViTKD paper setting (Tab. 4): UPerNet on ADE20K, 160k iterations, DeiT-S student, MMSegmentation.
# MMSegmentation's own DeiT-S UPerNet recipe (8 GPUs x 2, 512 x 512 crops, AdamW 6e-5, poly lr,
# blocks 3/6/9/12 -> MultiLevelNeck at 4x/2x/1x/0.5x -> UPerHead + FCN auxiliary head), with the
# backbone swapped for the student itself (mmseg's VisionTransformer has another key layout).
#   bash tools/dist_train.sh configs/downstream/upernet_deit-s-student_mln_8xb2-160k_ade20k-512x512.py 8
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmseg::vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmkd.downstream'], allow_failed_imports=False)

backbone_ckpt = 'work_dirs/students/deit-s_backbone.pth'  # extract_student.py --backbone

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='PlainViT',
        arch='deit-small',
        img_size=224,  # the student's pre-training size: pos_embed loads as is, resized on the fly
        patch_size=16,
        out_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(in_channels=[384, 384, 384, 384], out_channels=384, scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[384, 384, 384, 384], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
