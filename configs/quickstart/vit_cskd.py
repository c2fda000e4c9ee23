# The ViT student with a distillation token <- CNN teacher, CSKD as in the paper:
# 0.5 CE + 0.5 DeiT(dist token) + CSKD on the patch tokens, linear CKF.
_base_ = ['../cskd/fmnist_deit-small_resnet-small.py']
model = dict(teacher='configs/quickstart/teacher_cnn.py',
             teacher_ckpt='work_dirs/quickstart/teacher_cnn/epoch_3.pth')
