# The ViT student of fmnist_vit_p7_w64.py with a DeiT distillation token (DeiT, CSKD).
_base_ = ['./fmnist_vit_p7_w64.py']
model = dict(
    backbone=dict(type='DistilledVisionTransformer'),
    head=dict(type='DistillTokenClsHead'),
)
