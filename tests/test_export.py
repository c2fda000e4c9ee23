"""A distilled CNN student's backbone checkpoint loads into MMDetection/MMSegmentation backbones
with strict key matching, and distillation-only modules never leave the distiller."""
import pytest
import torch

import mmkd  # noqa: F401
from mmkd.apis import extract_student
from mmkd.registry import MODELS
from conftest import CNN

# a standard (ImageNet-style, 7x7 stem) ResNet-18 layout with small widths: the kind of student
# whose backbone goes on to a detector or a segmentor
DOWNSTREAM_RESNET = dict(depth=18, in_channels=1, stem_channels=16, base_channels=16, num_stages=3,
                         strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(0, 1, 2))
STUDENT = dict(type='ImageClassifier',
               backbone=dict(type='ResNet', **dict(DOWNSTREAM_RESNET, out_indices=(2, ))),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=10, in_channels=64))


@pytest.fixture
def distill_ckpt(teacher_ckpt, tmp_path):
    model = MODELS.build(dict(
        type='ClassificationDistiller', student=STUDENT, teacher=CNN, teacher_ckpt=teacher_ckpt,
        student_taps=dict(feat='backbone.layer3'), teacher_taps=dict(feat='backbone.layer3'),
        distill_losses=dict(loss_fitnet=dict(type='FitNetLoss', s_channels=64, t_channels=64))))
    for p in model.student.parameters():  # make the student distinguishable from a fresh init
        torch.nn.init.normal_(p)
    path = tmp_path / 'distill.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    return path, model


def test_backbone_loads_into_mmdet_and_mmseg_strictly(distill_ckpt, tmp_path):
    path, model = distill_ckpt
    out = tmp_path / 'backbone.pth'
    student, backbone = extract_student(str(path), backbone_out=str(out))
    assert not [k for k in student if 'distill_losses' in k or 'adapter' in k]

    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    det = DET_MODELS.build(dict(type='mmdet.ResNet', **DOWNSTREAM_RESNET,
                                init_cfg=dict(type='Pretrained', checkpoint=str(out))))
    seg = SEG_MODELS.build(dict(type='mmseg.ResNet', **DOWNSTREAM_RESNET,
                                init_cfg=dict(type='Pretrained', checkpoint=str(out))))
    for net in (det, seg):
        state = torch.load(out)['state_dict']
        missing, unexpected = net.load_state_dict(state, strict=True)
        assert not missing and not unexpected
        net.init_weights()  # the Pretrained init_cfg path users take
        for k, v in model.student.backbone.state_dict().items():
            assert torch.equal(net.state_dict()[k], v), k


def test_extract_rejects_non_distillation_checkpoint(teacher_ckpt):
    with pytest.raises(ValueError, match="no 'student.' keys"):
        extract_student(teacher_ckpt)
