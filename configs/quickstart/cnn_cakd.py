# The CNN student (half-width ResNet, 32 x 7 x 7 last map) <- ViT teacher (width 128, 6 blocks),
# Cross-Architecture KD: PCA + GL projectors, multi-view inputs, token discriminator.
_base_ = ['../cakd/fmnist_resnet-small_vit-small.py']
model = dict(
    student='configs/quickstart/cnn_baseline.py',
    teacher='configs/quickstart/teacher_vit.py',
    teacher_ckpt='work_dirs/quickstart/teacher_vit/epoch_3.pth',
    teacher_taps=dict(qkv='backbone.layers.5.attn.qkv', tokens='backbone.ln1'),
    distill_losses=dict(loss_cakd=dict(s_channels=32, t_dims=128, t_heads=4)),
)
