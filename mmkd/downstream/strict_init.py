"""A ``StrictPretrained`` weight initializer: load a backbone checkpoint or fail loudly.

MMEngine's ``Pretrained`` init loads with ``strict=False`` and only logs mismatches, so a
backbone whose keys do not match its checkpoint silently trains from scratch. ``StrictPretrained``
takes the same arguments, raises :class:`CheckpointMismatchError` naming the file and every
missing / unexpected / mis-shaped key, and logs how many tensors (and which key groups) loaded.

It is registered in MMEngine's root ``WEIGHT_INITIALIZERS``: the mmdet, mmseg, mmpretrain and mmkd
registries are its descendants, so ``init_cfg=dict(type='StrictPretrained', checkpoint=...)``
resolves under any ``default_scope``.
"""
from collections import OrderedDict

from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

from mmkd.models.builder import (CheckpointMismatchError, checkpoint_state_dict,
                                 load_state_strict, sub_state_dict)

__all__ = ['CheckpointMismatchError', 'StrictPretrainedInit', 'is_strict_pretrained']


def _key_groups(keys) -> str:
    """'patch_embed(2) cls_token(1) layers.0(12) ...': which keys loaded, in a line."""
    groups = OrderedDict()
    for k in keys:
        parts = k.split('.')
        group = '.'.join(parts[:2]) if len(parts) > 2 else parts[0]
        groups[group] = groups.get(group, 0) + 1
    return ' '.join(f'{g}({n})' for g, n in groups.items())


def is_strict_pretrained(init_cfg) -> bool:
    """Whether ``init_cfg`` (a dict or a list of dicts) asks for ``StrictPretrained``."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') in ('StrictPretrained', StrictPretrainedInit)
               for c in cfgs)


@WEIGHT_INITIALIZERS.register_module(name='StrictPretrained')
class StrictPretrainedInit:
    """Initialise a module from ``checkpoint`` with every key and shape matching.

    Args:
        checkpoint (str): path/URL of a checkpoint; its ``state_dict`` (or the dict itself) holds
            keys relative to the module (what ``tools/model_converters/extract_student.py
            --backbone`` writes).
        prefix (str, optional): keep only the keys under this prefix, with it removed (e.g.
            ``'backbone.'`` to take the backbone of a whole-model checkpoint).
        map_location (str): accepted as ``Pretrained`` takes it; tensors load on the CPU.

    Raises:
        ValueError: ``checkpoint`` is None (the config's ``backbone_ckpt`` was never set).
        CheckpointMismatchError: missing, unexpected or mis-shaped keys; the module is untouched
            by missing/unexpected keys (checked before any copy).
    """

    def __init__(self, checkpoint, prefix=None, map_location='cpu'):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location

    def __call__(self, module):
        name = module.__class__.__name__
        if self.checkpoint is None:
            raise ValueError(f'StrictPretrained: no checkpoint given for {name}: set the '
                             "config's backbone_ckpt (or model.backbone.init_cfg.checkpoint)")
        what = f"StrictPretrained: '{self.checkpoint}'"
        state = checkpoint_state_dict(self.checkpoint, 'backbone')
        if self.prefix:
            state = sub_state_dict(state, self.prefix, what)
        load_state_strict(module, state, what)

        values = sum(v.numel() for v in state.values())
        print_log(f"StrictPretrained: {name} loaded all {len(state)} tensors ({values:,} values) "
                  f"from '{self.checkpoint}': {_key_groups(state)}", logger='current')
        # Every parameter and buffer of the module now comes from the checkpoint. BaseModule
        # applies a non-'Pretrained' init_cfg *before* its children's init_weights, so mark the
        # children initialised, or their own inits would overwrite what was just loaded.
        for m in module.modules():
            if m is not module and isinstance(m, BaseModule):
                m._is_init = True
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f"StrictPretrained: load from '{self.checkpoint}'")
