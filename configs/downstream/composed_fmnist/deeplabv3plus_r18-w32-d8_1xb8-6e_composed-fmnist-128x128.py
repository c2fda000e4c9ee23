# The segmentation student alone (no distillation): DeepLabV3+ with a half-width ResNet-18
# (3.1M parameters) trained from scratch on the composed Fashion-MNIST set, 128 px, 11 classes,
# batch 8, 6 epochs (1500 iterations), AdamW 1e-3 with cosine decay.
#   python tools/train.py configs/downstream/composed_fmnist/deeplabv3plus_r18-w32-d8_1xb8-6e_composed-fmnist-128x128.py
# The baseline of deeplabv3plus_r18-w32_r34-w32-d8_1xb8-6e_composed-fmnist-128x128_tat.py: the
# same model, data, schedule and seed, without the teacher.
_base_ = [
    '../../_base_/models/deeplabv3plus_r18-w32-d8_composed-fmnist.py',
    '../../_base_/composed_fmnist_seg.py',
]
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
