# The DeiT student of fmnist_deit_p7_w64.py as CSKD trains it: every token out of the backbone
# and CSKD's head, which also predicts from the patch tokens (the patch-token ensemble is off).
_base_ = ['./fmnist_deit_p7_w64.py']
model = dict(backbone=dict(out_type='raw'), head=dict(type='CSKDClsHead', ensemble=False))
