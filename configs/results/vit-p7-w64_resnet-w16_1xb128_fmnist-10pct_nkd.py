# ViT student <- CNN teacher, NKD (normalized KD) next to the full CE, the paper's ImageNet
# setting for CNN students (T=1, gamma=1.5).
_base_ = ['../_base_/fmnist_results_vit-student_cnn-teacher.py']
# unlabelled images (PartialLabels): the teacher's top-1 class is their target
model = dict(unlabelled_targets='teacher', distill_losses=dict(loss_nkd=dict(type='NKDLoss', tau=1.0, gamma=1.5)))
