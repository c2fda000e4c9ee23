# UPerNet on ADE20K, 160k iterations (MMSegmentation's recipe), backbone = a distilled ResNet-50
# student. mmseg's recipe uses ResNetV1c (3-conv deep stem); an mmpretrain ResNet student has the
# standard 7x7 stem, i.e. mmseg's plain 'ResNet' with deep_stem=False.
# Another checkpoint: --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmkd.downstream'], allow_failed_imports=False)

backbone_ckpt = 'work_dirs/students/resnet50_backbone.pth'  # extract_student.py --backbone

model = dict(
    pretrained=None,
    backbone=dict(
        type='ResNet',
        depth=50,
        deep_stem=False,
        init_cfg=dict(type='StrictPretrained', checkpoint=backbone_ckpt)))
