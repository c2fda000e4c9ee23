# CNN student <- CNN teacher (4x as wide), Hinton KD: 0.5 CE + 0.5 KL(T=1).
_base_ = ['../_base_/fmnist_results_cnn-student_cnn-teacher.py']
model = dict(
    student_loss_weight=0.5,
    distill_losses=dict(loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=0.5)),
)
