# CNN student <- ViT teacher, Cross-Architecture KD
# (resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd.py, the paper's terms) with Hinton
# KD on the teacher's logits beside them, as ViTKD pairs with NKD: 0.5 CE + 0.5 KL(T=1) +
# L_proj1 + L_proj2 + L_MVG. Not in the paper: in the labelled-fraction regime CAKD alone gives
# the student no class information on the unlabelled images (docs/cakd.md); its reference is
# KD from the same teacher (resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_kd.py).
_base_ = ['./resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd.py']
model = dict(
    student_loss_weight=0.5,
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=0.5)),
)
