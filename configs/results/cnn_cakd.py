# CNN student <- ViT teacher, Cross-Architecture KD as in the paper: the student's intermediate
# stage (layer2, 16 x 7x7; the paper taps ResNet-50 stage 3) resized to the teacher's 4x4 token
# grid, PCA + GL projectors (2x2 windows: 4 Linears), multi-view inputs with p=0.5, a token
# discriminator updated every 5 iterations, L_proj1 + L_proj2 + 1.0 L_MVG beside the full CE.
_base_ = ['../_base_/fmnist_results.py']
model = dict(
    type='CrossArchDistiller',
    student='configs/_base_/models/fmnist_resnet_w8.py',
    teacher='configs/_base_/models/fmnist_vit_p7_w128.py',
    teacher_ckpt='work_dirs/teachers/teacher_vit/epoch_5.pth',
    student_taps=dict(feat='backbone.layer2'),
    teacher_taps=dict(qkv='backbone.layers.5.attn.qkv', tokens='backbone.ln1'),
    distill_losses=dict(
        loss_cakd=dict(type='CAKDLoss', s_channels=16, t_dims=128, t_heads=4, window=2,
                       lambda_adv=1.0)),
    multi_view=dict(prob=0.5, mask_grid=4),
    d_interval=5,
)
# two optimizers (the schedule's cosine decay applies to both); the student's is the base's AdamW
optim_wrapper = dict(
    _delete_=True,
    constructor='CrossArchOptimWrapperConstructor',
    student=dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05)),
    discriminator=dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.999))),
)
model_wrapper_cfg = dict(type='mmkd.models.distillers.CrossArchDDP')
