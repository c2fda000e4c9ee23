# mmseg runs on the composed Fashion-MNIST set (configs/downstream/composed_fmnist/): mmseg's
# runtime, the semantic set at 128 px (grey) and the set's AdamW schedule. Leaf configs add the
# model.
_base_ = [
    'mmseg::_base_/default_runtime.py',
    './datasets/composed_fmnist_semantic.py',
    './schedules/composed_fmnist_adamw.py',
]

# one checkpoint kept: the last (CheckpointHook saves it at the end whatever the interval);
# logging by epoch: the benchmark's progress lines read 'Epoch(train) [e][i/n]'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', draw=False))
log_processor = dict(type='LogProcessor', window_size=25, by_epoch=True)
randomness = dict(seed=0)
