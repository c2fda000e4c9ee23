# CSKD on Fashion-MNIST: small DeiT student (distillation token, 7x7 patch tokens of width 64) <-
# small CNN teacher (last map 64x7x7, trained with configs/fmnist/resnet-small_1xb128_fmnist.py).
# Real data, minutes on a CPU. 0.5 * CE + 0.5 * DeiT(dist token) + CSKD(patch tokens), CKF linear.
_base_ = [
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fmnist_adamw.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='ClassificationDistiller',
    student='configs/cskd/deit-small_1xb128_fmnist.py',  # fmnist_deit_small.py + CSKDClsHead
    teacher='configs/_base_/models/fmnist_resnet_small.py',
    teacher_ckpt='work_dirs/resnet-small_1xb128_fmnist/epoch_5.pth',
    student_loss_weight=0.5,
    student_taps=dict(tokens='backbone.ln1'),  # (B, 2 + 49, 64)
    teacher_taps=dict(feat='backbone'),        # ((B, 64, 7, 7), )
    distill_losses=dict(
        loss_deit=dict(type='DeiTLoss', mode='hard', loss_weight=0.5),
        loss_cskd=dict(type='CSKDLoss', mode='hard', loss_weight=1.0),
    ),
)
custom_hooks = [
    dict(type='DistillScheduleHook',
         schedules=[dict(loss='loss_cskd', attr='ckf_ratio', type='linear', start_value=1.0,
                         end_value=0.0)]),
]
# accuracy/top1: DeiT's (cls + dist) / 2; ensemble/accuracy/top1: (cls + dist + patches) / 3
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='PredFieldMetric', field='ensemble', metric=dict(type='Accuracy', topk=(1, ))),
]
test_evaluator = val_evaluator
