# The ViT teacher (patch 7 -> 4x4 tokens, width 128, 6 blocks), trained alone.
_base_ = ['../_base_/fmnist_results.py', '../_base_/models/fmnist_vit_p7_w128.py']
# Every label: the teachers are the models that know more than their students.
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]))
