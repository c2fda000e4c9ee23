# CAKD, ResNet-50 (student) <- ViT-B/16 (teacher), ImageNet-1k, 224 px, 120 epochs.
# h_S: ResNet-50 layer3 (stride 16), 1024 x 14 x 14: the stage the paper taps. Grid alignment:
# 224 / 16 = 14, ViT-B/16's 14x14 = 196 patch tokens, so no resize; GL: 16 Linears (4x4 windows).
_base_ = ['../_base_/cakd_imagenet.py']
model = dict(
    teacher_ckpt='checkpoints/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_20210928-98e8652b.pth',
    student='mmpretrain::resnet/resnet50_8xb32_in1k.py',
    student_taps=dict(feat='backbone.layer3'),
    distill_losses=dict(loss_cakd=dict(s_channels=1024)),
)
