# CNN student <- CNN teacher, FitNet hint on the middle stage (16 -> 32 channels at 7x7, a 1x1
# adapter), as the ImageNet config hints layer3 of 4; the student's full CE beside it.
_base_ = ['../_base_/fmnist_results_cnn-student_cnn-teacher.py']
model = dict(
    student_taps=dict(feat='backbone.layer2'),
    teacher_taps=dict(feat='backbone.layer2'),
    distill_losses=dict(loss_fitnet=dict(type='FitNetLoss', s_channels=16, t_channels=32)),
)
