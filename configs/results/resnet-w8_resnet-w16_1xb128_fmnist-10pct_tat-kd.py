# CNN student <- CNN teacher, TaT with KD, the paper's second classification setting:
# 0.5 CE + 0.5 KL(T=1) + 0.1 TaT (one-to-all on the last maps, as
# resnet-w8_resnet-w16_1xb128_fmnist-10pct_tat.py).
_base_ = ['./resnet-w8_resnet-w16_1xb128_fmnist-10pct_tat.py']
model = dict(
    student_loss_weight=0.5,
    distill_losses=dict(loss_tat=dict(loss_weight=0.1),
                        loss_kd=dict(type='KDLoss', tau=1.0, loss_weight=0.5)),
)
