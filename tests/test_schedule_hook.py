import math
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

import mmkd  # noqa: F401
from mmkd.engine.hooks.distill_schedule_hook import schedule_value
from mmkd.registry import HOOKS
from conftest import FMNIST, runner_from_cfg


def test_schedule_shapes():
    E = 10
    for e in range(E):
        assert schedule_value('linear', e, 0, E, 1.0, 0.0) == pytest.approx(1 - e / E)
        assert schedule_value('cos', e, 0, E, 1.0, 0.0) == pytest.approx(math.cos(math.pi / 2 * e / E))
        assert schedule_value('x2', e, 0, E, 1.0, 0.0) == pytest.approx((1 - e / E) ** 2)
    W = 20  # DKD: min(epoch / W, 1), epoch counted from 1
    for e in range(40):
        assert schedule_value('linear', e, 0, W - 1, 1 / W, 1.0) == pytest.approx(min((e + 1) / W, 1))
    assert schedule_value('step', 4, 0, 5, 1.0, 0.0) == 1.0
    assert schedule_value('step', 5, 0, 5, 1.0, 0.0) == 0.0
    assert schedule_value('linear', 0, 0, 0, 0.25, 1.0) == 1.0  # W = 1: full weight at once
    with pytest.raises(ValueError, match='unknown schedule'):
        schedule_value('exp', 0, 0, 1, 0, 1)


@HOOKS.register_module(force=True)
class RecordLossAttrHook(Hook):
    priority = 'LOW'  # after DistillScheduleHook

    def __init__(self, loss, attr):
        self.loss, self.attr, self.seen = loss, attr, []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen.append((runner.epoch, runner.iter,
                          getattr(runner.model.distill_losses[self.loss], self.attr)))


def _recorded(runner):
    return [h for h in runner.hooks if isinstance(h, RecordLossAttrHook)][0].seen


def _runner(tmp_path, schedule, by_epoch=True, **train_cfg):
    cfg = Config.fromfile('configs/kd/vit-small_resnet-small_1xb128_fmnist.py')
    cfg.work_dir = str(tmp_path)
    cfg.model.teacher_ckpt = None
    cfg.train_dataloader.update(batch_size=32, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.indices = 64  # 2 iterations per epoch
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = None
    cfg.train_cfg = dict(by_epoch=by_epoch, **train_cfg) if by_epoch else dict(
        type='IterBasedTrainLoop', **train_cfg)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=by_epoch)
    cfg.custom_hooks = [dict(type='DistillScheduleHook', schedules=[schedule]),
                        dict(type='RecordLossAttrHook', loss='loss_kd', attr=schedule.get('attr', 'weight_scale'))]
    return runner_from_cfg(cfg)


@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')), reason='no data')
def test_hook_follows_epochs_and_resumes(tmp_path):
    sched = dict(loss='loss_kd', type='linear', begin=0, end=None, start_value=1.0, end_value=0.0)
    runner = _runner(tmp_path, sched, max_epochs=4)
    runner.train()
    seen = _recorded(runner)
    assert [(e, v) for e, _, v in seen] == [(e, pytest.approx(1 - e / 4)) for e in range(4) for _ in range(2)]
    # resume from epoch 2 of a fresh runner: the schedule continues from the runner's state
    runner = _runner(tmp_path, sched, max_epochs=4)
    runner._resume = True
    runner._load_from = osp.join(str(tmp_path), 'epoch_2.pth')
    runner.train()
    seen = _recorded(runner)
    assert [(e, v) for e, _, v in seen] == [(e, pytest.approx(1 - e / 4)) for e in (2, 3) for _ in range(2)]


@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')), reason='no data')
def test_hook_follows_iterations(tmp_path):
    sched = dict(loss='loss_kd', type='cos', by_epoch=False, start_value=1.0, end_value=0.0)
    runner = _runner(tmp_path, sched, by_epoch=False, max_iters=5)
    runner.train()
    seen = _recorded(runner)
    assert [v for _, _, v in seen] == [pytest.approx(math.cos(math.pi / 2 * i / 5)) for i in range(5)]


@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')), reason='no data')
def test_relative_schedule_is_a_fraction_of_the_run(tmp_path):
    """The public CAKD ramp min(max(e - 25, 0) / 50, 0.2) of 120 epochs, shrunk to 12 iterations:
    0 up to 25/120 of the run, 0.2 from 35/120 on, linear between."""
    sched = dict(loss='loss_kd', type='linear', by_epoch=False, relative=True, begin=25 / 120,
                 end=35 / 120, start_value=0.0, end_value=0.2)
    runner = _runner(tmp_path, sched, by_epoch=False, max_iters=12)
    runner.train()
    seen = [v for _, _, v in _recorded(runner)]
    begin, end = 12 * 25 / 120, 12 * 35 / 120
    assert seen == [pytest.approx(min(max(i - begin, 0) / (end - begin), 1) * 0.2)
                    for i in range(12)]
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(0.2)


def test_relative_schedule_rejects_bounds_outside_the_run():
    from mmkd.engine import DistillScheduleHook
    with pytest.raises(ValueError, match='fractions of the run'):
        DistillScheduleHook([dict(loss='loss_kd', relative=True, begin=25, end=35)])


@pytest.mark.slow
def test_hook_rejects_unknown_loss_or_attr(tmp_path):
    from mmkd.engine import DistillScheduleHook
    with pytest.raises(ValueError, match='unknown keys'):
        DistillScheduleHook([dict(loss='loss_kd', typo=1)])
    runner = _runner(tmp_path, dict(loss='loss_nope'), max_epochs=1)
    with pytest.raises(KeyError, match="no distillation loss 'loss_nope'.*loss_kd"):
        runner.call_hook('before_run')


@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')), reason='no data')
def test_scheduled_value_is_logged_as_set_not_smoothed(tmp_path):
    sched = dict(loss='loss_kd', type='linear', begin=0, end=None, start_value=1.0, end_value=0.0)
    runner = _runner(tmp_path, sched, max_epochs=2)
    runner.train()
    # MMEngine smooths scalars named '*loss*'; the schedule's scalar is not one of them
    assert runner.message_hub.get_scalar('train/kd.weight_scale').current() == 0.5
    tag, _ = runner.log_processor.get_log_after_iter(runner, 1, 'train')
    assert tag['kd.weight_scale'] == 0.5
