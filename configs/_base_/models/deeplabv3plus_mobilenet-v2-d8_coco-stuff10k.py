# As deeplabv3plus_mobilenet-v2-d8_voc12aug.py, with the 171 COCO-Stuff10k classes.
_base_ = './deeplabv3plus_mobilenet-v2-d8_voc12aug.py'
model = dict(decode_head=dict(num_classes=171), auxiliary_head=dict(num_classes=171))
