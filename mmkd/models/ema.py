"""Weight averaging (EMA) of a distiller for MMEngine's ``EMAHook``: the student and the
distillation modules are averaged; the frozen teacher is neither copied nor averaged.

Why not MMEngine's ``ExponentialMovingAverage`` as is: it ``deepcopy``-s the whole model. The
teacher is not a registered sub-module of a distiller (see :class:`BaseDistiller`), so its
weights are never averaged, swapped or saved by it, but the copy still gets a *second teacher*
(as much memory as the teacher, on the teacher's device), and the copied student keeps forward
hooks that write into the *original* distiller's feature taps. :class:`DistillerEMA` copies the
distiller without its teacher instead.
"""
import copy
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage

from mmkd.registry import MODELS


def copy_without_teacher(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose ``teacher`` is ``None``.

    The teacher's modules, parameters and buffers are given to ``deepcopy`` as already copied
    (to themselves), so that nothing reaching them (the teacher taps, a loss's
    :meth:`~mmkd.models.losses.DistillLoss.bind`-kept teacher classifier) duplicates any part
    of the teacher; the copy's feature-tap hooks are removed, because their closures belong to
    the original's taps. A model without a teacher is copied as ``deepcopy`` does.
    """
    teacher = getattr(model, 'teacher', None)
    if not isinstance(teacher, nn.Module):
        return copy.deepcopy(model)
    memo = {}
    for obj in (*teacher.modules(), *teacher.parameters(), *teacher.buffers()):
        memo[id(obj)] = obj
    copied = copy.deepcopy(model, memo)
    copied.student_taps.remove()
    copied.teacher_taps.remove()
    copied.teacher_source.module = None  # the copy's own source object: the original keeps it
    return copied


@MODELS.register_module()
class DistillerEMA(ExponentialMovingAverage):
    """Exponential moving average of a distiller's trainable state, for ``EMAHook``.

    What is averaged is what the distiller's ``parameters()`` (and with ``update_buffers``, its
    ``state_dict()``) hold: the student and the distillation modules (loss adapters,
    projectors, ...), never the teacher, which ``self.module`` does not contain
    (:func:`copy_without_teacher`). Used as

    .. code-block:: python

        custom_hooks = [dict(type='EMAHook', ema_type='DistillerEMA', momentum=1e-4)]

    ``EMAHook`` then validates and tests with the averaged weights (it swaps them into the
    distiller before each val/test epoch and back after it), saves them as the checkpoint's
    ``state_dict`` and the training weights as ``ema_state_dict`` (``module.``-prefixed); both
    lack the teacher. ``tools/model_converters/extract_student.py --ema`` exports the averaged
    student. Any other model (no ``teacher``) is averaged as by ``ExponentialMovingAverage``.

    Integer state (BatchNorm's ``num_batches_tracked``, CrossArchDistiller's ``train_iter``) is
    not averaged; with ``update_buffers=True`` MMEngine would freeze it at its first value, here
    it follows the trained model.

    Args:
        model (nn.Module): the distiller (not its DDP wrapper; ``EMAHook`` unwraps it).
        momentum, interval, device, update_buffers: see ``ExponentialMovingAverage``;
            ``momentum`` weighs the *new* weights: ``avg = (1 - momentum) * avg + momentum * w``.
    """

    def __init__(self,
                 model: nn.Module,
                 momentum: float = 0.0002,
                 interval: int = 1,
                 device: Optional[torch.device] = None,
                 update_buffers: bool = False) -> None:
        copied = copy_without_teacher(model)
        # the base class deep-copies what it is given; a second, plain deepcopy of the copy
        # would duplicate the teacher parts its losses keep (bind), so that copy returns itself
        object.__setattr__(copied, '__deepcopy__', lambda memo: copied)
        try:
            super().__init__(copied, momentum, interval, device, update_buffers)
        finally:
            del copied.__dict__['__deepcopy__']

    def forward(self, *args, **kwargs):
        """The averaged student (the copy has no teacher to distil from)."""
        module = self.module
        return module.student(*args, **kwargs) if hasattr(module, 'student') else module(
            *args, **kwargs)

    def update_parameters(self, model: nn.Module) -> None:
        super().update_parameters(model)
        if not self.update_buffers:
            return  # the base class copied every buffer from the model already
        source = model.state_dict()
        for key, value in self.avg_parameters.items():
            if not value.dtype.is_floating_point:
                value.data.copy_(source[key].data.to(value.device))
