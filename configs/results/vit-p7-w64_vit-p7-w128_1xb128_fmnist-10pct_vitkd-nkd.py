# ViTKD + NKD, the paper's best combination (NKD at T=1, gamma=1 for ViT students).
_base_ = ['./vit-p7-w64_vit-p7-w128_1xb128_fmnist-10pct_vitkd.py']
# unlabelled images (PartialLabels): the teacher's top-1 class is their target
model = dict(unlabelled_targets='teacher', distill_losses=dict(loss_nkd=dict(type='NKDLoss', tau=1.0, gamma=1.0)))
