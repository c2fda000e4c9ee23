# The CNN teacher (16, 32, 64 channels; last map 64 x 4 x 4), trained alone.
_base_ = ['../_base_/fmnist_results.py', '../_base_/models/fmnist_resnet_w16.py']
# Every label: the teachers are the models that know more than their students.
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]))
