"""The one interface every distillation loss implements.

A loss is an ``nn.Module`` whose ``forward`` takes named tensors and returns a scalar: the
method's formula *including its own coefficients* (ViTKD's alpha/beta, NKD's gamma, ...).
The distiller multiplies that by ``loss_weight`` and by ``weight_scale``; the latter is what
:class:`~mmkd.engine.DistillScheduleHook` changes over training (warm-up, decay, stop).

Where each argument comes from is a mapping ``argument -> source`` (``inputs``), with sources:

- ``'student.<tap>'`` / ``'teacher.<tap>'``: a feature tap of that model; the tap ``logits``
  (output of the classifier's head) always exists;
- ``'data.gt_label'``: hard labels (B,), ``'data.gt_score'``: soft labels (B, K) (mixup/cutmix
  mixed when batch augments are on, else one-hot).

Each loss class states its ``default_inputs``; a config overrides only what differs.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor


class DistillLoss(nn.Module):
    default_inputs: Dict[str, str] = {}

    def __init__(self, loss_weight: float = 1.0, inputs: Optional[Dict[str, str]] = None):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.weight_scale = 1.0
        self.inputs = {**self.default_inputs, **(inputs or {})}
        self.name = type(self).__name__  # set to the config key by the distiller
        # detached parts of the last value, logged by the distiller as '<method>.<part>'
        self.log_vars: Dict[str, Tensor] = {}

    def setup(self, student: nn.Module, teacher: nn.Module) -> None:
        """Called once by the distiller after both models are built.

        A loss that needs a *part* of a model (e.g. CSKD applies the teacher's classifier to
        every position) keeps it with :meth:`bind`, never as an attribute: an attribute would
        register the teacher's module in the loss, hence in the optimizer and the checkpoint.
        """

    def bind(self, name: str, module: nn.Module) -> None:
        """Keep an unregistered reference to ``module`` (see :meth:`setup`)."""
        object.__setattr__(self, name, module)

    def check_inputs(self, **tensors: Tensor) -> None:
        """Raise ``ValueError`` naming loss, taps and shapes when ``tensors`` cannot work.

        Called once, on the first step, with the same arguments ``forward`` gets.
        """

    # -- helpers for check_inputs ---------------------------------------------------------
    def describe(self, arg: str, tensor) -> str:
        shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        return f"'{arg}' (from {self.inputs.get(arg, '?')}) of shape {shape}"

    def shape_error(self, problem: str, *args_and_tensors) -> ValueError:
        pairs = zip(args_and_tensors[::2], args_and_tensors[1::2])
        parts = ', '.join(self.describe(a, t) for a, t in pairs)
        return ValueError(f"{type(self).__name__} '{self.name}': {problem}: {parts}")

    def require_same_shape(self, a: str, ta: Tensor, b: str, tb: Tensor) -> None:
        if ta.shape != tb.shape:
            raise self.shape_error('inputs must have the same shape', a, ta, b, tb)

    def require_logits_and_labels(self, s_logits: Tensor, t_logits: Tensor, gt: Tensor) -> None:
        """(B, K) student and teacher logits of one shape, and labels for the same B."""
        self.require_ndim('s_logits', s_logits, (2, ))
        self.require_same_shape('s_logits', s_logits, 't_logits', t_logits)
        if gt.shape[0] != s_logits.shape[0]:
            raise self.shape_error('batch sizes differ', 's_logits', s_logits, 'gt', gt)

    def require_ndim(self, arg: str, tensor: Tensor, ndims: Sequence[int]) -> None:
        if not isinstance(tensor, Tensor) or tensor.dim() not in ndims:
            raise self.shape_error(f'expected a {"/".join(map(str, ndims))}-D tensor', arg, tensor)


def hard_labels(gt: Tensor) -> Tensor:
    """(B,) labels from hard (B,) or soft/mixed (B, K) labels: the argmax, as NKD/DKD do."""
    return gt.argmax(dim=1) if gt.dim() == 2 else gt


def non_target(x: Tensor, gt: Tensor) -> Tensor:
    """(B, K) -> (B, K-1): every entry of each row but the one at ``gt`` (order kept)."""
    keep = torch.ones_like(x, dtype=torch.bool).scatter_(1, gt.unsqueeze(1), False)
    return x[keep].view(x.size(0), x.size(1) - 1)
