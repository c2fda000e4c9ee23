# The results table's ViT student (patch 7, width 64, 4 blocks) <- its CNN teacher (91.5 %);
# the rows of configs/results/vit_*.py add their method on top.
_base_ = ['./fmnist_results.py']
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_vit_p7_w64.py',
    teacher='configs/_base_/models/fmnist_resnet_w16.py',
    teacher_ckpt='work_dirs/teachers/teacher_cnn/epoch_12.pth',
)
