# The results table's CNN student (8, 16, 32 channels) <- its CNN teacher (2x as wide);
# the rows of configs/results/cnn_*.py add their method on top.
_base_ = ['./fmnist_results.py']
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_resnet_w8.py',
    teacher='configs/_base_/models/fmnist_resnet_w16.py',
    teacher_ckpt='work_dirs/teachers/teacher_cnn/epoch_12.pth',
)
