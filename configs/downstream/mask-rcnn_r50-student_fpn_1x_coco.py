# Mask R-CNN + FPN on COCO, 1x schedule (MMDetection's standard setting), backbone = a distilled
# ResNet-50 student (mmpretrain ResNet: the same key layout as mmdet's ResNet).
#   python tools/model_converters/extract_student.py work_dirs/<kd run>/epoch_100.pth \
#       --backbone work_dirs/students/resnet50_backbone.pth
#   bash tools/dist_train.sh configs/downstream/mask-rcnn_r50-student_fpn_1x_coco.py 8
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd.downstream'], allow_failed_imports=False)

backbone_ckpt = 'work_dirs/students/resnet50_backbone.pth'  # extract_student.py --backbone

model = dict(
    backbone=dict(
        depth=50,
        # strict: a missing/unexpected/mis-shaped key is an error naming the keys
        init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)))
