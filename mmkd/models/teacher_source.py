"""Where a distiller's teacher records come from: the frozen teacher network run on the batch
(:class:`OnlineTeacher`), or the teacher's logits stored with the data
(:class:`CachedTeacherLogits`, written by ``tools/cache_teacher_logits.py``).

A source says which teacher records it provides (``paths``, the ``teacher.<name>`` inputs a
loss may read, checked at build time) and returns them for a batch (:meth:`records`). It also
holds the teacher network, if one was built, and keeps it frozen: the distiller does not
register it as a sub-module (see :class:`~mmkd.models.distillers.BaseDistiller`), so its moves
and its eval mode go through the source.
"""
import contextlib
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn
from torch import Tensor

from .taps import FeatureTaps, TapSpec

#: runs the teacher network on a preprocessed batch: the distiller's ``teacher_forward``
TeacherForward = Callable[[Tensor, Optional[list]], object]


class TeacherSource:
    """What every source shares: the teacher network (or ``None``) and its taps.

    Attributes:
        module (nn.Module | None): the frozen teacher network, if built.
        taps (FeatureTaps): hooks on ``module`` (none without one).
        paths (dict): ``record name -> description`` of what :meth:`records` returns.
        runs_teacher (bool): whether a training step runs ``module``.
        kind (str): what it is, for messages.
    """
    runs_teacher = False
    kind = 'no teacher'

    def __init__(self, module: Optional[nn.Module], taps: Optional[Dict[str, TapSpec]] = None):
        self.module = module
        self.taps = FeatureTaps(module, taps or {}, 'teacher')
        #: records some loss reads: a step whose records lack one is an error
        self.required: List[str] = []

    @property
    def paths(self) -> Dict[str, str]:
        return self.taps.paths

    def records(self, forward: TeacherForward, inputs: Tensor,
                data_samples) -> Dict[str, object]:
        """The teacher's records for this batch (``name -> tensor``)."""
        raise NotImplementedError

    # -- the frozen network's bookkeeping (nothing without one) ----------------------------
    def eval(self) -> None:
        if self.module is not None:
            self.module.eval()

    def apply(self, fn, *args, **kwargs) -> None:
        """``nn.Module._apply`` on the teacher: it follows the distiller's ``.to``/``.cuda``."""
        if self.module is not None:
            self.module._apply(fn, *args, **kwargs)


class OnlineTeacher(TeacherSource):
    """The frozen teacher network, run once per step under ``no_grad`` (optionally
    ``torch.autocast`` in ``autocast``'s dtype, its records cast back to float32); ``taps``
    record what the losses read."""
    runs_teacher = True
    kind = 'the online teacher'

    def __init__(self, module: nn.Module, taps: Dict[str, TapSpec],
                 autocast: Optional[str] = None):
        super().__init__(module, taps)
        self.autocast = autocast

    def records(self, forward: TeacherForward, inputs: Tensor,
                data_samples) -> Dict[str, object]:
        # not inference_mode: its tensors cannot be saved for the student's backward
        with torch.no_grad(), autocast_context(self.autocast, inputs), \
                self.taps.recording() as records:
            forward(inputs, data_samples)
        missing = [tap for tap in self.required if tap not in records]
        if missing:
            raise RuntimeError(
                f'teacher taps {missing} captured nothing in the teacher forward pass: their '
                'modules did not run, or the teacher is compiled (compile_teacher) and '
                "torch.compile skipped these modules' forward hooks, as torch 2.14 does for "
                'e.g. a Linear inside an attention block, or reused a graph traced on another '
                'module of the same architecture with other hooks. Tap another module or set '
                'compile_teacher=False.')
        return _to_float32(records) if self.autocast else records


class CachedTeacherLogits(TeacherSource):
    """The teacher's (B, K) logits from the data: the ``teacher_logits`` field that
    :class:`~mmkd.datasets.TeacherLogitsDataset` adds to every data sample. The teacher network
    (``module``, optional: e.g. to also evaluate it) is never run in training."""
    kind = 'a logit cache'

    def __init__(self, module: Optional[nn.Module] = None):
        super().__init__(module)

    @property
    def paths(self) -> Dict[str, str]:
        return dict(logits='data samples: teacher_logits')

    def records(self, forward: TeacherForward, inputs: Tensor,
                data_samples) -> Dict[str, object]:
        if data_samples is None or 'teacher_logits' not in data_samples[0]:
            raise KeyError('logit_cache=True, but the data samples carry no teacher_logits: '
                           'wrap the training dataset in TeacherLogitsDataset')
        return dict(logits=torch.stack([s.teacher_logits for s in data_samples]).to(inputs.device))


def autocast_context(dtype: Optional[str], inputs: Tensor):
    """``torch.autocast`` in ``dtype`` (``'bfloat16'``/``'float16'``) on ``inputs``' device;
    nothing for ``None``."""
    if not dtype:
        return contextlib.nullcontext()
    return torch.autocast(inputs.device.type, dtype=getattr(torch, dtype))


def _to_float32(records):
    """Half-precision tensors (at any depth of tuples/lists/dicts) to float32."""
    if isinstance(records, Tensor):
        return records.float() if records.is_floating_point() else records
    if isinstance(records, dict):
        return {k: _to_float32(v) for k, v in records.items()}
    if isinstance(records, (tuple, list)):
        return type(records)(_to_float32(v) for v in records)
    return records
