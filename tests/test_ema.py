"""EMA of a distiller (MMEngine's EMAHook with ``ema_type='DistillerEMA'``): the student and the
distillation modules are averaged, the teacher is neither averaged, copied nor saved; validation
runs with the averaged weights; ``extract_student.py --ema`` exports them. Short Runner runs on
64 real Fashion-MNIST images (2 iterations an epoch) against an independent float64 EMA of the
weights recorded after every iteration."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import ExponentialMovingAverage

import mmkd  # noqa: F401
from mmkd.apis import extract_student
from mmkd.models import DistillerEMA
from mmkd.registry import HOOKS, MODELS
from conftest import FMNIST, runner_from_cfg
from tools_helpers import PY, run_tool

pytestmark = [
    pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                       reason='Fashion-MNIST not prepared (tools/setup_env.sh)'),
    pytest.mark.filterwarnings('ignore:teacher_ckpt=None'),
]

MOMENTUM = 0.3  # large, so that 4 iterations leave the average far from the last weights


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@HOOKS.register_module(force=True)
class EMARecorder(Hook):
    """What the distiller holds after each training iteration, during validation and after it.
    LOW: after EMAHook (NORMAL) has updated / swapped in / swapped back the average."""
    priority = 'LOW'

    def __init__(self):
        self.trained, self.validated, self.restored = [], [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.trained.append(_state(runner.model))

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.validated.append(_state(runner.model))

    def after_val_epoch(self, runner, metrics=None):
        self.restored.append(_state(runner.model))


def _runner(config, work_dir, update_buffers, max_epochs=2, resume=False):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.model.teacher_ckpt = None
    cfg.train_dataloader.update(batch_size=32, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.indices = 64
    cfg.val_dataloader.update(batch_size=64, num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.indices = 64
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    cfg.custom_hooks = [dict(type='EMAHook', ema_type='DistillerEMA', momentum=MOMENTUM,
                             update_buffers=update_buffers),
                        dict(type='EMARecorder')]
    if resume:
        cfg.resume, cfg.load_from = True, osp.join(str(work_dir), 'epoch_1.pth')
    return runner_from_cfg(cfg)


def _hook(runner, kind):
    return next(h for h in runner.hooks if type(h).__name__ == kind)


def _expected_ema(states, model, update_buffers):
    """EMAHook's average, recomputed in float64: the first weights, then
    avg = (1 - m) avg + m w after every iteration; what is not averaged (buffers without
    update_buffers, integer state) is the last weights'."""
    averaged = set(model.state_dict() if update_buffers else dict(model.named_parameters()))
    avg = {k: v.double() for k, v in states[0].items()}
    for state in states[1:]:
        for k, v in state.items():
            if k in averaged and v.is_floating_point():
                avg[k] = (1 - MOMENTUM) * avg[k] + MOMENTUM * v.double()
            else:
                avg[k] = v.double()
    return avg


# ViTKD: a ViT student (no BatchNorm) with distillation modules (generation block, mask token);
# FitNet: a CNN student and teacher with BatchNorm buffers, a 1x1 adapter, update_buffers=True
CASES = [('configs/results/vit-p7-w64_vit-p7-w128_1xb128_fmnist-10pct_vitkd.py', False,
          'distill_losses.loss_vitkd.'),
         ('configs/results/resnet-w8_resnet-w16_1xb128_fmnist-10pct_fitnet.py', True,
          'distill_losses.loss_fitnet.')]


@pytest.mark.slow
@pytest.mark.parametrize('config,update_buffers,distill_prefix', CASES)
def test_ema_averages_student_only_validates_and_exports(config, update_buffers, distill_prefix,
                                                         tmp_path):
    runner = _runner(config, tmp_path, update_buffers)
    teacher = runner.model.teacher
    t_before = _state(teacher)
    runner.train()
    rec = _hook(runner, 'EMARecorder')
    ema = _hook(runner, 'EMAHook').ema_model
    assert isinstance(ema, DistillerEMA) and len(rec.trained) == 4 and len(rec.validated) == 2

    # the teacher: not copied, and bit-identical (parameters and buffers, BN statistics too)
    assert runner.model.teacher is teacher and ema.module.teacher is None
    t_after = teacher.state_dict()
    assert t_before.keys() == t_after.keys() and t_before
    assert all(torch.equal(t_before[k], t_after[k]) for k in t_before)
    # averaged: every trainable tensor, the distillation modules' included
    assert any(k.startswith(distill_prefix) for k in ema.avg_parameters)
    assert all(k.startswith(('student.', 'distill_losses.')) for k in ema.avg_parameters)

    # validation ran with the average of the weights up to then, and training goes on from
    # the training weights
    epochs = ((rec.validated[0], rec.restored[0], rec.trained[1], rec.trained[:2]),
              (rec.validated[1], rec.restored[1], rec.trained[3], rec.trained))
    for val, after, last, upto in epochs:
        expected = _expected_ema(upto, runner.model, update_buffers)
        for k, v in val.items():
            torch.testing.assert_close(v.double(), expected[k], rtol=1e-5, atol=1e-6,
                                       msg=f'{k} during validation is not the EMA')
            assert torch.equal(after[k], last[k]), f'{k} not restored after validation'
        assert any(not torch.allclose(val[k], last[k], atol=1e-4) for k in val
                   if k.startswith('student.')), 'the EMA should differ from the last weights'

    # the checkpoint: EMAHook stores the average as state_dict, the training weights as
    # ema_state_dict ('module.'-prefixed); neither holds the teacher
    ckpt = torch.load(tmp_path / 'epoch_2.pth')
    state, ema_state = ckpt['state_dict'], ckpt['ema_state_dict']
    assert not [k for k in [*state, *ema_state] if 'teacher.' in k or k.startswith('teacher')]
    assert set(ema_state) == {'steps'} | {f'module.{k}' for k in state}
    assert int(ema_state['steps']) == 4

    # export: --ema (the tool) is the EMA validated at epoch 2, --no-ema the training weights
    out = tmp_path / 'ema' / 'student.pth'
    run_tool([PY, 'tools/model_converters/extract_student.py', str(tmp_path / 'epoch_2.pth'),
              '--classifier', str(out), '--ema'], env=dict(OMP_NUM_THREADS='1'))
    exported = torch.load(out)
    assert exported['meta']['weights'] == 'ema'
    student_ema = {k[len('student.'):]: v for k, v in rec.validated[1].items()
                   if k.startswith('student.')}
    assert exported['state_dict'].keys() == student_ema.keys()
    assert all(torch.equal(exported['state_dict'][k], v) for k, v in student_ema.items())
    trained, _ = extract_student(str(tmp_path / 'epoch_2.pth'), ema=False)
    assert all(torch.equal(trained[k], rec.trained[3][f'student.{k}']) for k in trained)
    default, _ = extract_student(str(tmp_path / 'epoch_2.pth'))  # what state_dict holds: the EMA
    assert all(torch.equal(default[k], v) for k, v in student_ema.items())

    if update_buffers:  # once is enough: resuming continues the average where it was
        runner = _runner(config, tmp_path / 'resumed', update_buffers, max_epochs=1)
        runner.train()
        runner = _runner(config, tmp_path / 'resumed', update_buffers, resume=True)
        runner.train()
        resumed = torch.load(tmp_path / 'resumed' / 'epoch_2.pth')['ema_state_dict']
        assert int(resumed['steps']) == 4
        assert int(runner.model.student.backbone.bn1.num_batches_tracked) == 4
        # integer state follows the model instead of staying at its first value
        assert int(_hook(runner, 'EMAHook').ema_model.module.student.backbone.bn1
                   .num_batches_tracked) == 4


def test_ema_rejects_checkpoint_without_average(tmp_path):
    cfg = Config.fromfile('configs/results/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct_kd.py')
    model = MODELS.build(dict(cfg.model, teacher_ckpt=None))
    path = tmp_path / 'plain.pth'
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    with pytest.raises(ValueError, match='no ema_state_dict: the run had no EMAHook'):
        extract_student(str(path), ema=True)
    student, _ = extract_student(str(path), ema=False)  # no EMA: the training weights
    assert student.keys() == model.student.state_dict().keys()


def test_mmengine_ema_copies_the_teacher_distiller_ema_does_not():
    """What MMEngine's ExponentialMovingAverage does with a distiller: the teacher (not a
    registered sub-module) is never averaged, but the copy holds a second teacher, and the
    copied student's tap hooks write into the original's taps. DistillerEMA: neither."""
    cfg = Config.fromfile('configs/cskd/deit-small_resnet-small_1xb128_fmnist.py')
    model = MODELS.build(dict(cfg.model, teacher_ckpt=None,
                              data_preprocessor=cfg.data_preprocessor))
    t_params = {id(p) for p in model.teacher.parameters()}
    x = torch.zeros(2, 1, 28, 28)

    plain = ExponentialMovingAverage(model)
    assert plain.module.teacher is not None and plain.module.teacher is not model.teacher
    assert not [k for k in plain.avg_parameters if 'teacher' in k]
    with model.student_taps.recording() as records:
        plain.module.student(x, mode='tensor')
    assert records, 'the plain copy records into the original taps'

    ours = DistillerEMA(model)
    assert ours.module.teacher is None
    assert not t_params & {id(p) for p in ours.module.parameters()}
    assert ours.avg_parameters.keys() == plain.avg_parameters.keys()
    # CSKD's loss keeps the teacher's classifier (bind): shared, not copied
    assert ours.module.distill_losses.loss_cskd.t_fc is model.distill_losses.loss_cskd.t_fc
    with model.student_taps.recording() as records:
        ours(x, mode='tensor')  # the averaged student runs, and records into nothing of the original
    assert not records
    ours.eval(), model.eval()  # nothing was trained: the average is the model
    torch.testing.assert_close(ours(x, mode='tensor'), model.student(x, mode='tensor'))
