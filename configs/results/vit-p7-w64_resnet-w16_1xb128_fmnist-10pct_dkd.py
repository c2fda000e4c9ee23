# ViT student <- CNN teacher, DKD with the paper's ImageNet setting: alpha 1, beta 0.5, T=1 and a
# 1-epoch warm-up, min(epoch / 1, 1) = 1 from the first epoch on (configs/dkd/).
_base_ = ['../_base_/fmnist_results_vit-student_cnn-teacher.py']
# unlabelled images (PartialLabels): the teacher's top-1 class is their target
model = dict(unlabelled_targets='teacher', distill_losses=dict(loss_dkd=dict(type='DKDLoss', alpha=1.0, beta=0.5, tau=1.0)))
