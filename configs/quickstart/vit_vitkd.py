# ViT student (width 64) <- ViT teacher (width 128), ViTKD with the paper's alpha, beta, lambda:
# mimic blocks 0 and 1, generate the final-norm output from half-masked student tokens.
_base_ = [
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fmnist_adamw.py',
    '../_base_/default_runtime.py',
]
vit_taps = dict(low0='backbone.layers.0', low1='backbone.layers.1', high='backbone.ln1')
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_vit_small.py',
    teacher='configs/quickstart/teacher_vit.py',
    teacher_ckpt='work_dirs/quickstart/teacher_vit/epoch_3.pth',
    student_taps=vit_taps,
    teacher_taps=vit_taps,
    distill_losses=dict(loss_vitkd=dict(type='ViTKDLoss', s_dims=64, t_dims=128)),
)
