# CNN student <- ViT teacher, Hinton KD (0.5 CE + 0.5 KL(T=1)): the logit-only reference for
# Cross-Architecture KD, from the same teacher (resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd-kd.py
# adds CAKD's terms on top).
_base_ = ['./resnet-w8_resnet-w16_1xb128_fmnist-10pct_kd.py']
model = dict(
    teacher='configs/_base_/models/fmnist_vit_p7_w128.py',
    teacher_ckpt='work_dirs/teachers/teacher_vit/epoch_15.pth',
)
