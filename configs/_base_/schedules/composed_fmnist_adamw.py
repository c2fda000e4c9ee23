# The composed Fashion-MNIST regime (tools/benchmark/downstream.py): epochs of the 2000 train
# canvases, AdamW with a short linear warm-up and cosine decay to the end of the run, whatever
# train_cfg.max_epochs is set to (the schedulers' `end` defaults to the run's length); one
# evaluation after the last epoch (a tool changing max_epochs sets val_interval with it).
# Epoch-based, so that the benchmark's progress lines (epoch, iteration, time left) read the
# log as in the results table. Hooks and logging: composed_fmnist_{seg,det}.py (they replace
# the libraries' runtime defaults, which a schedule base may not redefine beside them).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, eta_min=1e-5),
]
max_epochs = 4
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
