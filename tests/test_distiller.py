import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper

import mmkd  # noqa: F401
from mmkd.registry import MODELS
from conftest import CNN, DEIT, PRE, VIT, random_batch


def build(teacher_ckpt, **kwargs):
    cfg = dict(type='ClassificationDistiller', student=VIT, teacher=CNN, teacher_ckpt=teacher_ckpt,
               distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0)), data_preprocessor=PRE)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def optim(model):
    return build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))


def test_teacher_frozen_excluded_and_unchanged(teacher_ckpt):
    model = build(teacher_ckpt)
    model.train()
    assert model.student.training
    assert not any(m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())
    t_ids = {id(p) for p in model.teacher.parameters()}
    assert not t_ids & {id(p) for p in model.parameters()}
    wrapper = optim(model)
    in_optim = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert not t_ids & in_optim

    before = copy.deepcopy(model.teacher.state_dict())  # BN running stats included
    student_before = copy.deepcopy(model.student.state_dict())
    for seed in range(3):
        log = model.train_step(random_batch(seed=seed), wrapper)
        assert set(log) >= {'loss', 'loss_cls', 'loss_kd'}
        assert not any(m.training for m in model.teacher.modules())
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, before[k]), f'teacher tensor {k} changed'
    assert all(p.grad is None for p in model.teacher.parameters())
    changed = [k for k, v in model.student.state_dict().items() if not torch.equal(v, student_before[k])]
    assert changed, 'the student did not learn'


def test_teacher_runs_once_per_step_on_the_same_mixed_batch(teacher_ckpt):
    pre = dict(PRE, batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8)]))
    model = build(teacher_ckpt, data_preprocessor=pre,
                  student_taps=dict(x=dict(path='backbone', io='input')),
                  teacher_taps=dict(x=dict(path='backbone', io='input')))
    calls = []
    model.teacher.register_forward_hook(lambda *a: calls.append(1))
    seen = {}
    model.teacher.backbone.register_forward_hook(lambda m, a, o: seen.__setitem__('t', a[0]))
    model.student.backbone.register_forward_hook(lambda m, a, o: seen.__setitem__('s', a[0]))
    model.train_step(random_batch(), optim(model))
    assert len(calls) == 1
    assert torch.equal(seen['s'], seen['t'])


def test_teacher_norm_is_exact_affine_renormalisation(teacher_ckpt):
    t_norm = dict(mean=[127.5], std=[50.0])
    model = build(teacher_ckpt, teacher_norm=t_norm)
    seen = {}
    model.teacher.backbone.register_forward_hook(lambda m, a, o: seen.__setitem__('t', a[0]))
    data = random_batch()
    raw = torch.stack(data['inputs']).float()
    model.train_step(data, optim(model))
    torch.testing.assert_close(seen['t'], (raw - 127.5) / 50.0, rtol=1e-5, atol=1e-5)


def test_eval_teacher_predictions_and_metric(teacher_ckpt):
    from mmkd.evaluation import TeacherMetric
    model = build(teacher_ckpt, eval_teacher=True).eval()
    data = model.data_preprocessor(random_batch(), False)
    samples = model(**data, mode='predict')
    with torch.no_grad():
        t_logits = model.teacher(model.teacher_inputs(data['inputs']), mode='tensor')
    torch.testing.assert_close(torch.stack([s.teacher_pred_score for s in samples]),
                               t_logits.softmax(1))
    metric = TeacherMetric(metric=dict(type='Accuracy', topk=(1, )))
    metric.process(None, [s.to_dict() for s in samples])
    result = metric.evaluate(len(samples))
    assert list(result) == ['teacher/accuracy/top1']
    expected = 100.0 * sum(int(s.teacher_pred_label) == int(s.gt_label) for s in samples) / len(samples)
    assert result['teacher/accuracy/top1'] == pytest.approx(expected)


def test_deit_token_student(teacher_ckpt):
    model = build(teacher_ckpt, student=DEIT, student_loss_weight=0.5,
                  distill_losses=dict(loss_deit=dict(type='DeiTLoss', mode='hard', loss_weight=0.5)))
    seen = {}
    head = model.student.head
    head.layers.head_dist.register_forward_hook(lambda m, a, o: seen.__setitem__('dist', o))
    head.layers.head.register_forward_hook(lambda m, a, o: seen.__setitem__('cls', o))
    wrapper = optim(model)
    dist_w = head.layers.head_dist.weight.clone()
    log = model.train_step(random_batch(), wrapper)
    assert 'loss_deit' in log
    assert not torch.equal(dist_w, head.layers.head_dist.weight), 'the distillation head did not learn'
    model.eval()
    data = model.data_preprocessor(random_batch(), False)
    with torch.no_grad():
        out = model(data['inputs'], mode='tensor')
    torch.testing.assert_close(out, (seen['cls'] + seen['dist']) / 2)


def test_checkpoint_round_trip_without_teacher(teacher_ckpt, tmp_path):
    model = build(teacher_ckpt)
    sd = model.state_dict()
    fresh = build(teacher_ckpt)
    missing, unexpected = fresh.load_state_dict(sd, strict=True)
    assert not missing and not unexpected


# ---- errors at build time ---------------------------------------------------------------

def test_missing_teacher_ckpt_argument_is_an_error():
    with pytest.raises(ValueError, match='teacher_ckpt'):
        MODELS.build(dict(type='ClassificationDistiller', student=VIT, teacher=CNN))


def test_teacher_ckpt_none_warns_loudly():
    with pytest.warns(UserWarning, match='RANDOM'):
        build(None)


def test_missing_teacher_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        build(str(tmp_path / 'nothere.pth'))


def test_mismatched_teacher_checkpoint_names_file_and_keys(tmp_path):
    from mmkd.models.builder import build_model
    other = build_model(VIT, 'teacher')  # a ViT checkpoint for a CNN teacher
    path = str(tmp_path / 'vit.pth')
    torch.save(dict(state_dict=other.state_dict()), path)
    with pytest.raises(ValueError, match=r"vit\.pth.*missing keys.*backbone\.conv1\.weight.*"
                                         r"unexpected keys.*backbone\.(cls_token|layers)"):
        build(path)


def test_mis_shaped_teacher_checkpoint(teacher_ckpt, tmp_path):
    sd = torch.load(teacher_ckpt)['state_dict']
    sd['head.fc.weight'] = torch.zeros(7, 64)
    path = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict=sd), path)
    with pytest.raises(ValueError, match=r"(?s)bad\.pth.*head\.fc\.weight"):
        build(path)


def test_unknown_tap_path_lists_nearest_names(teacher_ckpt):
    with pytest.raises(KeyError, match=r"student tap 'low'.*backbone\.layer\.0.*backbone\.layers\.0"):
        build(teacher_ckpt, student_taps=dict(low='backbone.layer.0'))


def test_unknown_source_lists_taps(teacher_ckpt):
    with pytest.raises(ValueError, match=r"unknown source 'teacher\.feat'.*teacher\.logits"):
        build(teacher_ckpt, distill_losses=dict(
            loss_fit=dict(type='FitNetLoss', s_channels=64, t_channels=64, feat_type='tokens')),
            student_taps=dict(feat='backbone.layers.3'))


def test_wrong_number_of_classes(teacher_ckpt):
    from mmengine.config import Config
    student = Config.fromfile(VIT).model
    student.head.num_classes = 100
    with pytest.raises(ValueError, match=r"loss_kd.*100 classes.*teacher 10"):
        build(teacher_ckpt, student=student)


def test_shape_mismatch_at_first_step_names_loss_taps_and_shapes(teacher_ckpt):
    model = build(teacher_ckpt, distill_losses=dict(
        loss_fit=dict(type='FitNetLoss', s_channels=64, t_channels=64, feat_type='map')),
        student_taps=dict(feat='backbone.layers.3'), teacher_taps=dict(feat='backbone.layer3'))
    with pytest.raises(ValueError, match=r"loss_fit.*s_feat.*student\.feat.*\(4, 50, 64\)"):
        model.train_step(random_batch(), optim(model))


def test_loss_names_must_start_with_loss(teacher_ckpt):
    with pytest.raises(ValueError, match="'kd' must start with 'loss_'"):
        build(teacher_ckpt, distill_losses=dict(kd=dict(type='KDLoss')))


def test_model_name_and_package_config_specs():
    from mmkd.models.builder import model_config
    assert model_config('deit-tiny_4xb256_in1k', 'student')['backbone']['arch'] == 'deit-tiny'
    cfg = model_config('mmpretrain::resnet/resnet18_8xb32_in1k.py', 'student')
    assert cfg['backbone']['depth'] == 18
    with pytest.raises(ValueError, match=r"Nearest model names: \[.*deit-tiny_4xb256_in1k"):
        model_config('deit-tiny_4xb256_in1', 'student')


def test_loss_parts_are_logged_but_not_summed(teacher_ckpt):
    from mmkd.models import KDLoss

    class KDWithParts(KDLoss):
        def forward(self, s_logits, t_logits):
            value = super().forward(s_logits, t_logits)
            self.log_vars = dict(half=value / 2)
            return value

    model = build(teacher_ckpt, distill_losses=dict(loss_kd=KDWithParts(tau=2.0)))
    log = model.train_step(random_batch(), optim(model))
    assert log['kd.half'].item() == pytest.approx(log['loss_kd'].item() / 2, rel=1e-5)
    assert log['loss'].item() == pytest.approx(log['loss_kd'].item() + log['loss_cls'].item(), rel=1e-5)
