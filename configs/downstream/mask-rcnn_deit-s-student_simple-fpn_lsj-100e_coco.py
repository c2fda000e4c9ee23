# ViTKD paper setting (Tab. 4): Mask R-CNN on COCO with a DeiT-S student, "following ViTDet":
# plain ViT backbone (the student as is, last block, stride 16) + simple feature pyramid,
# large-scale jitter 1024 x 1024, 100 epochs (RepeatDataset x4 x 25 epochs), AdamW lr 1e-4,
# weight decay 0.1, batch 64, 4conv1fc box head and 4-conv mask head with normalisation.
# Differences from ViTDet (detectron2): no window attention (DeiT has none, the student runs
# global attention at 1/16), no layer-wise lr decay, GN instead of LN in the RoI heads.
#   bash tools/dist_train.sh configs/downstream/mask-rcnn_deit-s-student_simple-fpn_lsj-100e_coco.py 8
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]
custom_imports = dict(imports=['mmkd.downstream'], allow_failed_imports=False)

backbone_ckpt = 'work_dirs/students/deit-s_backbone.pth'  # extract_student.py --backbone

image_size = (1024, 1024)
head_norm = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='PlainViT',
        arch='deit-small',
        img_size=224,  # the student's pre-training size: pos_embed loads as is, resized on the fly
        patch_size=16,
        out_indices=(-1, ),
        drop_path_rate=0.1,
        init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=384,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,  # strides 4..32 + a max-pooled stride-64 level for the RPN
        norm_cfg=dict(type='LN2d')),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=head_norm),
        mask_head=dict(norm_cfg=head_norm)))

train_dataloader = dict(batch_size=8, num_workers=4)  # 8 GPUs x 8 = 64 as ViTDet
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',  # --amp turns it into AmpOptimWrapper on GPUs
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={'pos_embed': dict(decay_mult=0.0), 'cls_token': dict(decay_mult=0.0)}),
    clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=25, by_epoch=True, milestones=[22, 24], gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=64)
