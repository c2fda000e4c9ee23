# KD on Fashion-MNIST: small ViT student <- small CNN teacher (trained with
# configs/fmnist/resnet-small_1xb128_fmnist.py). Real data, minutes on a CPU.
_base_ = [
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fmnist_adamw.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='ClassificationDistiller',
    student='configs/_base_/models/fmnist_vit_small.py',
    teacher='configs/_base_/models/fmnist_resnet_small.py',
    teacher_ckpt='work_dirs/resnet-small_1xb128_fmnist/epoch_5.pth',
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0)),
)
