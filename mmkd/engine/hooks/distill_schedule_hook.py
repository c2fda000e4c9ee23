"""Schedules for distillation-loss attributes over epochs or iterations."""
import math
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS

SCHEDULES = ('linear', 'cos', 'x2', 'step')


def schedule_value(kind: str, t: float, begin: float, end: float, start_value: float,
                   end_value: float) -> float:
    """The value at time ``t``; before ``begin`` it is ``start_value``, from ``end`` on ``end_value``.

    With progress ``p = clamp((t - begin) / (end - begin), 0, 1)``:

    - ``linear``: start + (end - start) * p
    - ``cos``:    end + (start - end) * cos(pi/2 * p)     (CSKD's cos)
    - ``x2``:     end + (start - end) * (1 - p)^2         (CSKD's x2)
    - ``step``:   start until ``end``, then end_value     (e.g. stop a loss)
    """
    if kind not in SCHEDULES:
        raise ValueError(f'unknown schedule {kind!r}; choose from {SCHEDULES}')
    if kind == 'step':
        return start_value if t < end else end_value
    p = 1.0 if end <= begin else min(max((t - begin) / (end - begin), 0.0), 1.0)
    if kind == 'linear':
        return start_value + (end_value - start_value) * p
    if kind == 'cos':
        return end_value + (start_value - end_value) * math.cos(math.pi / 2 * p)
    return end_value + (start_value - end_value) * (1 - p) ** 2


@HOOKS.register_module()
class DistillScheduleHook(Hook):
    """Sets attributes of distillation losses from the runner's progress, before every iteration.

    Each schedule: ``dict(loss='loss_dkd', attr='weight_scale', type='linear', begin=0, end=20,
    start_value=0., end_value=1., by_epoch=True)``. ``t`` is the number of *completed* epochs
    (``by_epoch``) or iterations; ``end=None`` means the run's last epoch/iteration. The value
    is recomputed from the runner's state, so resumed runs continue the schedule exactly, and
    it is logged as ``<method>.<attr>`` (``loss_dkd`` -> ``dkd.weight_scale``). With
    ``relative=True``, ``begin`` and ``end`` are fractions of the run (0..1 of its epochs or
    iterations), so one schedule fits any run length (a 120-epoch recipe shrunk to 2 epochs).

    Examples:
        DKD warm-up ``min(epoch/W, 1)``, epoch counted from 1:
        ``type='linear', begin=0, end=W-1, start_value=1/W, end_value=1``.
        CSKD's CKF ratio ``r = 1 - epoch/max_epochs``:
        ``attr='ckf_ratio', type='linear', start_value=1, end_value=0`` (``end=None``).
    """
    priority = 'NORMAL'

    def __init__(self, schedules: List[dict]):
        self.schedules = []
        for s in schedules:
            s = dict(s)
            unknown = set(s) - {'loss', 'attr', 'type', 'begin', 'end', 'start_value',
                                'end_value', 'by_epoch', 'relative'}
            if unknown or 'loss' not in s:
                raise ValueError(f'DistillScheduleHook: bad schedule {s} (unknown keys {unknown})')
            s.setdefault('attr', 'weight_scale')
            s.setdefault('type', 'linear')
            s.setdefault('begin', 0)
            s.setdefault('end', None)
            s.setdefault('start_value', 0.0)
            s.setdefault('end_value', 1.0)
            s.setdefault('by_epoch', True)
            s.setdefault('relative', False)
            if s['relative'] and not all(v is None or 0 <= v <= 1 for v in (s['begin'], s['end'])):
                raise ValueError(f'DistillScheduleHook: relative schedule {s}: begin and end are '
                                 'fractions of the run, in [0, 1]')
            schedule_value(s['type'], 0, 0, 1, 0, 1)  # validates the type now
            self.schedules.append(s)

    def _losses(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        losses = getattr(model, 'distill_losses', None)
        if losses is None:
            raise TypeError('DistillScheduleHook needs a distiller model with distill_losses')
        return losses

    def before_run(self, runner) -> None:
        losses = self._losses(runner)
        for s in self.schedules:
            if s['loss'] not in losses:
                raise KeyError(f"DistillScheduleHook: no distillation loss '{s['loss']}'; the "
                               f'model has {list(losses)}')
            if not hasattr(losses[s['loss']], s['attr']):
                raise AttributeError(f"DistillScheduleHook: loss '{s['loss']}' "
                                     f"({type(losses[s['loss']]).__name__}) has no attribute "
                                     f"'{s['attr']}'")

    def value(self, s: dict, runner) -> float:
        t = runner.epoch if s['by_epoch'] else runner.iter
        length = runner.max_epochs if s['by_epoch'] else runner.max_iters
        scale = length if s['relative'] else 1
        begin = s['begin'] * scale
        end = s['end'] * scale if s['end'] is not None else length
        return schedule_value(s['type'], t, begin, end, s['start_value'], s['end_value'])

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None) -> None:
        losses = self._losses(runner)
        for s in self.schedules:
            v = self.value(s, runner)
            setattr(losses[s['loss']], s['attr'], v)
            # named without 'loss': MMEngine would log a moving average of a '*loss*' scalar
            runner.message_hub.update_scalar(f"train/{s['loss'][len('loss_'):]}.{s['attr']}", v)
