# CNN student <- ViT teacher, Cross-Architecture KD as the authors' public code computes it
# (REFERENCE.md), on top of the paper's row (resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd.py):
# L_proj1 compares the pre-softmax maps
# Q K^T / sqrt(d) and the unscaled V V^T with weights 0.2 and 0.05, the PCA projector is a
# per-token Linear (to_qkv), no partial substitution; no adversarial term (the code's
# discriminator sees a detached input: a no-op for the student); and its weight ramp
# min(max(epoch - 25, 0) / 50, 0.2) of 120 epochs, as fractions of this run.
_base_ = ['./resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd.py']
model = dict(
    distill_losses=dict(
        loss_cakd=dict(proj1='scores', proj1_weights=(0.2, 0.05), pca_kernel=1, sub_prob=0.0,
                       lambda_adv=0.0)),
)
custom_hooks = [
    dict(type='DistillScheduleHook',
         schedules=[dict(loss='loss_cakd', attr='weight_scale', type='linear', by_epoch=False,
                         relative=True, begin=25 / 120, end=35 / 120, start_value=0.0,
                         end_value=0.2)]),
]
