# DeepLabV3+ ResNet-101 (mmseg's r101-d8) with the 171 COCO-Stuff10k classes: the TaT teacher.
# mmseg has no trained DeepLabV3+ for COCO-Stuff10k: train it with this config first
# (tools/train.py on an mmseg config), then pass its checkpoint as teacher_ckpt.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py'
model = dict(decode_head=dict(num_classes=171), auxiliary_head=dict(num_classes=171))
