# CAKD, EfficientNet-B0 (student) <- ViT-B/16 (teacher), ImageNet-1k, 224 px, 120 epochs
# (the paper's common schedule, not EfficientNet's own recipe).
# h_S: the last stride-16 stage (layers.4), 112 x 14 x 14: the paper's stage-3 counterpart. Grid
# alignment: 224 / 16 = 14, ViT-B/16's 14x14 = 196 patch tokens, so no resize.
_base_ = ['../_base_/cakd_imagenet.py']
model = dict(
    teacher_ckpt='checkpoints/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_20210928-98e8652b.pth',
    student='mmpretrain::efficientnet/efficientnet-b0_8xb32_in1k.py',
    student_taps=dict(feat='backbone.layers.4'),
    distill_losses=dict(loss_cakd=dict(s_channels=112)),
)
