from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmkd.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Mixed precision without a loss scaler: the forward passes run under ``torch.autocast``
    in ``dtype`` (bfloat16 by default) on the model's device.

    bfloat16 has float32's exponent range, so its gradients need no loss scaling; that makes
    this wrapper work where MMEngine's ``AmpOptimWrapper`` refuses to (CPUs) and a simpler
    alternative to it on GPUs with bf16. ``tools/train.py --amp`` picks it on machines
    without a GPU.

    Args:
        dtype (str): ``'bfloat16'`` or ``'float16'`` (float16 without a loss scaler can
            underflow gradients: use ``AmpOptimWrapper`` for it on GPUs).
        **kwargs: see ``mmengine.optim.OptimWrapper``.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f"AutocastOptimWrapper: dtype must be 'bfloat16' or 'float16', "
                             f'got {dtype!r}')
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        param = next(model.parameters(), None)
        device = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(device, dtype=self.cast_dtype):
            yield
