# ViT student with a distillation token <- CNN teacher, CSKD as in the paper: 0.5 CE + 0.5 DeiT
# (dist token, hard) + CSKD on the 4x4 patch tokens against the teacher's dense predictions on
# its 4x4 last map, CKF ratio 1 -> 0 over the run's iterations. Accuracy: (cls + dist) / 2.
_base_ = ['../_base_/fmnist_results_vit-student_cnn-teacher.py']
model = dict(
    student='configs/_base_/models/fmnist_cskd_p7_w64.py',
    student_loss_weight=0.5,
    student_taps=dict(tokens='backbone.ln1'),  # (B, 2 + 16, 64)
    teacher_taps=dict(feat='backbone'),        # ((B, 64, 4, 4), )
    distill_losses=dict(
        loss_deit=dict(type='DeiTLoss', mode='hard', loss_weight=0.5),
        loss_cskd=dict(type='CSKDLoss', mode='hard', loss_weight=1.0),
    ),
)
custom_hooks = [
    dict(type='DistillScheduleHook',
         # by iteration: these runs last an epoch or two, and a by-epoch ratio would stay 1
         # for the whole of a 1-epoch run (it counts completed epochs)
         schedules=[dict(loss='loss_cskd', attr='ckf_ratio', type='linear', start_value=1.0,
                         end_value=0.0, by_epoch=False)]),
]
