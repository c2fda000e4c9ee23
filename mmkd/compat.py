"""Running MMEngine 0.10.7 on torch >= 2.6, kept in one place.

torch.load now defaults to ``weights_only=True``. MMEngine loads checkpoints with a bare
``torch.load``, and its checkpoints hold a few non-tensor objects (the message hub's
``HistoryBuffer`` and the numpy arrays/scalars inside it). Rather than switching the safe
loader off, we allow-list exactly those types, so a ``.pth`` that smuggles any other callable
still fails to load.
"""
import collections
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_types() -> list:
    # numpy scalars and arrays pickle through these reconstructors and dtype classes.
    types = [np.ndarray, np.dtype, np.core.multiarray._reconstruct, np.core.multiarray.scalar]
    types += [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16,
                                          np.int32, np.int64, np.uint8, np.bool_)]
    return types


def _history_buffer_getattr(obj, name: str):
    """The only ``getattr`` a checkpoint may call.

    ``HistoryBuffer.__getstate__`` stores its statistic methods, which pickle (protocol 2)
    writes as ``getattr(HistoryBuffer, 'mean')``. Allowing the builtin ``getattr`` would let a
    checkpoint walk attribute chains; this resolves exactly those methods and nothing else.
    """
    # the class registry fills only when a first buffer is made, so name the built-ins too
    if obj is HistoryBuffer and (name in ('min', 'max', 'current', 'mean')
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'checkpoint asks for getattr({obj!r}, {name!r}): refused')


SAFE_CHECKPOINT_GLOBALS = [HistoryBuffer, collections.OrderedDict, *_numpy_types(),
                           (_history_buffer_getattr, 'builtins.getattr')]


def allow_mmengine_checkpoints() -> None:
    """Allow-list the types MMEngine checkpoints contain for ``torch.load(weights_only=True)``."""
    torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)
