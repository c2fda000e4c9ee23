# As resnet18_vit-b16_8xb32_in1k_public-ramp.py (the public code's weight ramp), with the rest of
# the
# authors' public code (REFERENCE.md): pre-softmax maps Q K^T / sqrt(d) and unscaled V V^T at
# weights 0.2 and 0.05, a per-token Linear projector (to_qkv), no partial substitution, and no
# adversarial term (its discriminator sees a detached input: a no-op for the student).
_base_ = ['./resnet18_vit-b16_8xb32_in1k_public-ramp.py']
model = dict(
    distill_losses=dict(
        loss_cakd=dict(proj1='scores', proj1_weights=(0.2, 0.05), pca_kernel=1, sub_prob=0.0,
                       lambda_adv=0.0)),
)
