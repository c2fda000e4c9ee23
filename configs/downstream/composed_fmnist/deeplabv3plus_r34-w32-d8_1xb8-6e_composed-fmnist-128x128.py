# The segmentation teacher: DeepLabV3+ with a half-width ResNet-34 and a decoder twice as wide
# as the student's (6.4M parameters, tap decode_head.sep_bottleneck 128 x 32 x 32), trained
# first, from scratch, on the same set and schedule as the student.
#   python tools/train.py configs/downstream/composed_fmnist/deeplabv3plus_r34-w32-d8_1xb8-6e_composed-fmnist-128x128.py
_base_ = './deeplabv3plus_r18-w32-d8_1xb8-6e_composed-fmnist-128x128.py'
model = dict(
    backbone=dict(depth=34),
    decode_head=dict(channels=128),
    auxiliary_head=dict(channels=64))
