# ViT student (width 64) <- ViT teacher (width 128), ViTKD with the paper's alpha, beta, lambda:
# mimic blocks 0 and 1, generate the final-norm output from half-masked student tokens; the
# student's full CE beside it.
_base_ = ['../_base_/fmnist_results.py']
vit_taps = dict(low0='backbone.layers.0', low1='backbone.layers.1', high='backbone.ln1')
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_vit_p7_w64.py',
    teacher='configs/_base_/models/fmnist_vit_p7_w128.py',
    teacher_ckpt='work_dirs/teachers/teacher_vit/epoch_15.pth',
    student_taps=vit_taps,
    teacher_taps=vit_taps,
    distill_losses=dict(loss_vitkd=dict(type='ViTKDLoss', s_dims=64, t_dims=128)),
)
