"""Distributed data parallel for a distiller with two updates per step (Cross-Architecture KD:
the student and the projectors, then the discriminators)."""
from typing import Dict, Union

import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from mmkd.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CrossArchDDP(nn.Module):
    """``model_wrapper_cfg=dict(type='mmkd.models.wrappers.CrossArchDDP')`` for
    :class:`~mmkd.models.distillers.CrossArchDistiller` (the full path: MMEngine's Runner looks
    the wrapper up in its root registry, which does not see mmkd's scope).

    MMEngine's DDP wrapper runs one single-optimizer update per step; the distiller runs two,
    on disjoint parameters. One reducer over all of them would miss half of its gradients in
    every update and need ``find_unused_parameters=True``: an extra autograd traversal per
    step, and a switch that would also hide a parameter that silently never trains. So each
    of the distiller's :meth:`~mmkd.models.distillers.CrossArchDistiller.update_steps` gets
    its own torch ``DistributedDataParallel``, over exactly the parameters that update trains,
    and every backward gives each parameter of its reducer a gradient, as DDP's default
    ``find_unused_parameters=False`` requires. ``model_wrapper_cfg``'s other arguments (that
    one too, when set) apply to every reducer.

    Args:
        module (nn.Module): the distiller (it has ``update_steps()`` and a ``train_step``
            that takes ``steps``).
        detect_anomalous_params (bool): accepted for MMEngine's DDP wrapper's signature; not
            supported here (MMEngine's check walks one reducer's graph).
        **kwargs: ``DistributedDataParallel`` arguments.
    """

    def __init__(self, module: nn.Module, detect_anomalous_params: bool = False, **kwargs):
        super().__init__()
        if not callable(getattr(module, 'update_steps', None)):
            raise TypeError(f'CrossArchDDP wraps a distiller with update_steps() (e.g. '
                            f'CrossArchDistiller), got {type(module).__name__}')
        if detect_anomalous_params:
            raise ValueError('CrossArchDDP: detect_anomalous_params is not supported')
        self.module = module
        steps = module.update_steps()
        # a plain dict, not sub-modules: the reducers share the module's parameters, so
        # state_dict(), modules() and .to() stay the module's
        self.reducers: Dict[str, DistributedDataParallel] = {
            name: DistributedDataParallel(step, **kwargs) for name, step in steps.items()
            if any(p.requires_grad for p in step.parameters())}

    def train_step(self, data: Union[dict, tuple, list], optim_wrapper) -> dict:
        return self.module.train_step(data, optim_wrapper, steps=self.reducers)

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.test_step(data)
