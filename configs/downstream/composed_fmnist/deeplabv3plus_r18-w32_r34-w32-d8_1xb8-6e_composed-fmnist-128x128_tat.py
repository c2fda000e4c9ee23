# TaT-seg (patch-group + anchor-point) on the composed Fashion-MNIST set: the student of
# deeplabv3plus_r18-w32-d8_1xb8-6e_composed-fmnist-128x128.py distilled from the teacher of
# deeplabv3plus_r34-w32-d8_1xb8-6e_composed-fmnist-128x128.py, everything else as the student's
# own run (data, schedule, seed), so the two differ by the distillation only.
#   python tools/train.py configs/downstream/composed_fmnist/deeplabv3plus_r34-w32-d8_1xb8-6e_composed-fmnist-128x128.py
#   python tools/train.py configs/downstream/composed_fmnist/deeplabv3plus_r18-w32_r34-w32-d8_1xb8-6e_composed-fmnist-128x128_tat.py \
# --cfg-options
# model.teacher_ckpt=work_dirs/deeplabv3plus_r34-w32-d8_1xb8-6e_composed-fmnist-128x128/epoch_6.pth
# (tools/benchmark/downstream.py trains the teacher and passes its checkpoint.)
#
# Tapped as configs/tat/: the decoder's last feature before the classifier, at 1/4 resolution
# (decode_head.sep_bottleneck; student 64 x 32 x 32, teacher 128 x 32 x 32 at 128 px). The VOC
# recipe's loss (configs/_base_/tat_seg_voc12aug.py) at a quarter of its map size, keeping what
# the patches and anchors cover: VOC cuts its 128 x 128 map into 16 x 16 patches of 8 x 8 in 64
# groups of 4 and pools 4 x 4 cells into 32 x 32 anchors; here 4 x 4 patches of 8 x 8 in 4 groups
# of 4 and 8 x 8 anchors of 4 x 4 cells. alpha=0.1, beta=1, gamma=0.4 as VOC.
_base_ = ['../../_base_/composed_fmnist_seg.py']
cfg_dir = 'configs/downstream/composed_fmnist/'
student = cfg_dir + 'deeplabv3plus_r18-w32-d8_1xb8-6e_composed-fmnist-128x128.py'
teacher = cfg_dir + 'deeplabv3plus_r34-w32-d8_1xb8-6e_composed-fmnist-128x128.py'
# the teacher run's last checkpoint; the benchmark tool overrides it
teacher_ckpt = 'work_dirs/deeplabv3plus_r34-w32-d8_1xb8-6e_composed-fmnist-128x128/epoch_6.pth'

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
model = dict(
    # default_scope is 'mmseg': `_scope_` builds the distiller in mmkd's registry
    _scope_='mmkd',
    type='SegmentationDistiller',
    student=student,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    # the students' own preprocessing (grey, Fashion-MNIST statistics), once for both models
    data_preprocessor=dict(mean=[72.94], std=[90.02], bgr_to_rgb=False, pad_val=0,
                           seg_pad_val=255, size=(128, 128)),
    student_taps=dict(feat='decode_head.sep_bottleneck'),
    teacher_taps=dict(feat='decode_head.sep_bottleneck'),
    distill_losses=dict(
        loss_tat=dict(type='TaTSegLoss', s_channels=64, t_channels=128, patches=(4, 4),
                      heads=4, anchors=(8, 8), alpha=0.1, beta=1.0, gamma=0.4)),
)
