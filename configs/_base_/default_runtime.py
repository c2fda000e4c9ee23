# Runtime shared by every mmkd config: mmkd scope (a child of mmpretrain's, so every mmpretrain
# type is available too), the usual hooks, CPU/GPU agnostic environment.
default_scope = 'mmkd'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # distillers: the teacher's top-1 on 256 val images, fed as in training, before the first
    # iteration; a teacher near chance stops the run (docs/teacher_check.md). A default hook, so
    # that configs setting their own custom_hooks keep it; off: teacher_check.enabled=False
    teacher_check=dict(type='TeacherCheckHook'),
)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
