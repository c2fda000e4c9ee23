# The CSKD student for Fashion-MNIST: the small DeiT of configs/_base_/models/fmnist_deit_small.py
# (distillation token, 7x7 patch tokens) with all tokens out of the backbone and CSKD's head, so
# that it can also predict with the patch-token ensemble. Trained alone, it is the baseline;
# configs/cskd/deit-small_resnet-small_1xb128_fmnist.py distils it; it evaluates the extracted
# student.
_base_ = [
    '../_base_/models/fmnist_deit_small.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fmnist_adamw.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(out_type='raw'), head=dict(type='CSKDClsHead', ensemble=False))

# accuracy/top1: DeiT's (cls + dist) / 2; ensemble/accuracy/top1: (cls + dist + patches) / 3
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='PredFieldMetric', field='ensemble', metric=dict(type='Accuracy', topk=(1, ))),
]
test_evaluator = val_evaluator
