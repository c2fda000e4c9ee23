# CAKD, ResNet-50 (student) <- Swin-B (teacher, window 7, 224 px), ImageNet-1k, 120 epochs.
# Swin's last stage is 7x7 tokens: one 7x7 window at 224 px, so its window attention is global
# attention over the grid, which CAKD needs (more than one window is an error). The student
# map on that grid is ResNet-50's layer4, 2048 x 7 x 7; GL: 4 Linears (windows 4 and 3 wide).
_base_ = ['../_base_/cakd_imagenet.py']
model = dict(
    # mmpretrain's swin-base_in21k-pre-3rdparty_in1k (ImageNet-21k pre-trained, 85.16 top-1 at
    # 224 px; the paper lists 86.38 for its Swin-B). Download:
    # https://download.openmmlab.com/mmclassification/v0/swin-transformer/convert/swin_base_patch4_window7_224_22kto1k-f967f799.pth
    teacher_ckpt='checkpoints/swin_base_patch4_window7_224_22kto1k-f967f799.pth',
    student='mmpretrain::resnet/resnet50_8xb32_in1k.py',
    teacher=dict(
        _delete_=True,
        type='ImageClassifier',
        backbone=dict(type='SwinTransformer', arch='base', img_size=224),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024)),
    teacher_norm=None,  # Swin uses the student's ImageNet normalisation
    student_taps=dict(feat='backbone.layer4'),
    teacher_taps=dict(_delete_=True, qkv='backbone.stages.3.blocks.1.attn.w_msa.qkv',
                      tokens='backbone.norm3'),
    distill_losses=dict(loss_cakd=dict(s_channels=2048, t_dims=1024, t_heads=32, grid=(7, 7))),
)
