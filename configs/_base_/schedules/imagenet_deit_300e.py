# DeiT recipe as the ViTKD paper trained it (MMClassification's DeiT configs): AdamW, lr 1e-3 at
# a total batch of 1024, wd 0.05, 300 epochs, cosine decay after a linear warm-up.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    # no decay on norms, biases and the learned tokens/embeddings, as DeiT
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        }),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr 1e-3 holds for 8 GPUs x 128; `tools/train.py --auto-scale-lr` rescales it for another total
auto_scale_lr = dict(base_batch_size=1024)
