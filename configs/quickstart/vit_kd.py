# ViT student <- CNN teacher, Hinton KD next to the student's CE. T=1 (the ImageNet setting):
# with T=4 this short run lost 3 points to the baseline (docs/benchmarks.md, quickstart).
_base_ = ['../kd/fmnist_vit-small_resnet-small.py']
model = dict(teacher='configs/quickstart/teacher_cnn.py',
             teacher_ckpt='work_dirs/quickstart/teacher_cnn/epoch_3.pth',
             distill_losses=dict(loss_kd=dict(tau=1.0)))
