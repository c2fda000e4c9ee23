# ImageNet-1k at 224 px with DeiT's augmentations (RandAugment m9/mstd0.5, random erasing 0.25),
# as mmpretrain's DeiT configs; mixup/cutmix are batch augments in the distiller's preprocessor.
# Layout of data/imagenet: docs/vitkd.md.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py']

# 8 GPUs x 128 = the paper's batch of 1024
train_dataloader = dict(batch_size=128, num_workers=8, persistent_workers=True)
val_dataloader = dict(batch_size=128, num_workers=8, persistent_workers=True)
test_dataloader = val_dataloader
