# The results table's regime (tools/benchmark/results.py, tools/quickstart.py): real
# Fashion-MNIST (or any MNIST-format set, by --data-root), batch 128, AdamW + cosine decay over
# the run; epochs, seeds and the teacher checkpoint are set by the tools.
_base_ = [
    './datasets/fashion_mnist.py',
    './schedules/fmnist_adamw.py',
    './default_runtime.py',
]
# The pre-flight teacher check (TeacherCheckHook, docs/teacher_check.md) is off in this regime:
# the results tools train their own teachers and report their accuracy, and their reduced test
# runs (--teacher-train-size 192, 1 epoch) use teachers near chance on purpose (8.5 % measured
# for the CNN), which the check would stop.
default_hooks = dict(teacher_check=dict(enabled=False))

# The students see every training image, but only the first 6000 keep their label (10 %, about
# 600 per class, the per-class size of CIFAR-100's training set): cross-entropy learns from those,
# distillation from all (docs/benchmarks.md says why). The teachers (configs/results/teacher_*.py)
# learn from every label. The tools' --labelled N sets num_labelled.
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='mmkd.PartialLabels', num_labelled=6000),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]))
