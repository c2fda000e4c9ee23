# The results table's regime (tools/benchmark/results.py, tools/quickstart.py): real
# Fashion-MNIST (or any MNIST-format set, by --data-root), batch 128, AdamW + cosine decay over
# the run; epochs, seeds and the teacher checkpoint are set by the tools.
_base_ = [
    './datasets/fashion_mnist.py',
    './schedules/fmnist_adamw.py',
    './default_runtime.py',
]
