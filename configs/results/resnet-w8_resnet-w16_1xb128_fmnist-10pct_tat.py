# CNN student <- CNN teacher, TaT one-to-all on the last maps (32 -> 64 channels at 4x4), the
# paper's classification setting: 0.1 CE + 0.2 TaT, 3x3 conv + BN projections, identity key.
_base_ = ['../_base_/fmnist_results_cnn-student_cnn-teacher.py']
model = dict(
    student_loss_weight=0.1,
    student_taps=dict(feat='backbone.layer3'),
    teacher_taps=dict(feat='backbone.layer3'),
    distill_losses=dict(loss_tat=dict(type='TaTLoss', s_channels=32, t_channels=64, proj_kernel=3,
                                      key_proj=False, loss_weight=0.2)),
)
