"""One optimizer per update of a distiller with two (Cross-Architecture KD)."""
from typing import Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS

UPDATES = ('student', 'discriminator')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CrossArchOptimWrapperConstructor:
    """Two optimizer wrappers for :class:`~mmkd.models.distillers.CrossArchDistiller`, one per
    update of its :meth:`~mmkd.models.distillers.CrossArchDistiller.update_steps`: ``student``
    (the student and the projectors) and ``discriminator``. Each is built by MMEngine's
    ``DefaultOptimWrapperConstructor`` on that update's module, whose parameters keep the
    distiller's names (``paramwise_cfg`` keys match as usual)::

        optim_wrapper = dict(
            constructor='CrossArchOptimWrapperConstructor',
            student=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
            discriminator=dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.999))))

    A top-level ``paramwise_cfg``, and any other top-level key (e.g. ``type='AmpOptimWrapper'``
    and ``loss_scale`` as ``tools/train.py --amp`` sets them), are defaults of both wrappers.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        cfg = dict(optim_wrapper_cfg)
        missing = set(UPDATES) - set(cfg)
        if missing or 'optimizer' in cfg:
            raise ValueError('CrossArchOptimWrapperConstructor: optim_wrapper needs the keys '
                             "'student' and 'discriminator' (each with its optimizer), got "
                             f'{sorted(cfg)}')
        shared = {k: v for k, v in cfg.items() if k not in UPDATES}
        self.optim_wrapper_cfg = {name: {**shared, **cfg[name]} for name in UPDATES}
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        if not callable(getattr(model, 'update_steps', None)):
            raise TypeError('CrossArchOptimWrapperConstructor needs a CrossArchDistiller, got '
                            f'{type(model).__name__}')
        steps = model.update_steps()
        if 'discriminator' not in steps:
            raise ValueError('CrossArchOptimWrapperConstructor: the distiller has no '
                             'discriminator (no CAKDLoss in distill_losses)')
        wrappers = {}
        for name in UPDATES:
            cfg = dict(self.optim_wrapper_cfg[name])
            paramwise = cfg.pop('paramwise_cfg', None) or self.paramwise_cfg
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(steps[name])
        return OptimWrapperDict(**wrappers)
