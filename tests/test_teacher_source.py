"""The distiller's teacher source (mmkd/models/teacher_source.py): the online frozen teacher or
the logit cache, one object that says which records it provides and returns them."""
import pytest
import torch
import torch.nn as nn

from conftest import CNN, PRE, VIT, random_batch
from mmkd.models.teacher_source import CachedTeacherLogits, OnlineTeacher, TeacherSource
from mmkd.registry import MODELS

pytestmark = pytest.mark.filterwarnings('ignore:teacher_ckpt=None')


def build(cached=False, **kwargs):
    cfg = dict(type='ClassificationDistiller', student=VIT, data_preprocessor=PRE,
               distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0)))
    cfg.update(dict(teacher=None, logit_cache=True) if cached
               else dict(teacher=CNN, teacher_ckpt=None))
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_online_teacher_is_held_by_its_source_and_stays_frozen():
    model = build()
    source = model.teacher_source
    assert type(source) is OnlineTeacher and source.runs_teacher and not model.logit_cache
    assert model.teacher is source.module and model.teacher_taps is source.taps
    assert source.required == ['logits'] and 'logits' in source.paths
    # not a sub-module: out of parameters(), state_dict() and train()
    t_params = {id(p) for p in model.teacher.parameters()}
    assert not t_params & {id(p) for p in model.parameters()}
    assert not [k for k in model.state_dict() if k.startswith('teacher')]
    model.train()
    assert not model.teacher.training and model.student.training
    model.to(torch.float64)  # _apply reaches the teacher through its source
    assert next(model.teacher.parameters()).dtype == torch.float64
    model.to(torch.float32)

    data = model.data_preprocessor(random_batch(n=4), True)
    records = model.teacher_records(data['inputs'], data['data_samples'])
    with torch.no_grad():
        expected = model.teacher(data['inputs'], mode='tensor')
    torch.testing.assert_close(records['logits'], expected)
    assert records['logits'].grad_fn is None


def test_online_teacher_under_autocast_returns_float32():
    model = build(teacher_autocast='bfloat16')
    data = model.data_preprocessor(random_batch(n=4), True)
    records = model.teacher_records(data['inputs'], data['data_samples'])
    assert records['logits'].dtype == torch.float32
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        expected = model.teacher(data['inputs'], mode='tensor').float()
    torch.testing.assert_close(records['logits'], expected)


def test_a_required_record_that_is_not_recorded_is_an_error():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    source = OnlineTeacher(net, {'first': '0', 'second': '1'})
    source.required = ['first', 'second']
    x = torch.randn(2, 4)
    assert set(source.records(lambda inputs, samples: net(inputs), x, None)) == {'first', 'second'}
    with pytest.raises(RuntimeError, match=r"teacher taps \['second'\] captured nothing"):
        source.records(lambda inputs, samples: net[0](inputs), x, None)


def test_logit_cache_source_reads_the_data_and_never_runs_a_teacher():
    model = build(cached=True)
    source = model.teacher_source
    assert type(source) is CachedTeacherLogits and model.logit_cache
    assert not source.runs_teacher and model.teacher is None
    assert list(source.paths) == ['logits']
    batch = random_batch(n=3)
    logits = torch.randn(3, 10)
    for sample, row in zip(batch['data_samples'], logits):
        sample.set_field(row, 'teacher_logits')
    data = model.data_preprocessor(batch, True)
    torch.testing.assert_close(model.teacher_records(data['inputs'], data['data_samples'])
                               ['logits'], logits)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss_kd'])
    with pytest.raises(KeyError, match='wrap the training dataset in TeacherLogitsDataset'):
        model(**model.data_preprocessor(random_batch(n=3), True), mode='loss')


def test_a_feature_loss_on_the_cache_names_the_source_at_build_time():
    with pytest.raises(ValueError, match=r"teacher\.feat.*a logit cache \(CachedTeacherLogits\), "
                                         r"which holds only \['logits'\]"):
        build(cached=True, distill_losses=dict(loss_mse=dict(
            type='FitNetLoss', s_channels=10, t_channels=10,
            inputs=dict(s_feat='student.logits', t_feat='teacher.feat'))))


def test_a_source_without_a_network_has_nothing_to_move():
    source = TeacherSource(None)
    assert source.paths == {} and not source.runs_teacher
    source.eval()
    source.apply(lambda t: t)  # no network: nothing happens, nothing fails
    with pytest.raises(NotImplementedError):
        source.records(None, torch.zeros(1), None)
