"""A ``StrictPretrained`` weight initializer: load a backbone checkpoint or fail loudly.

MMEngine's ``Pretrained`` init loads with ``strict=False`` and only logs mismatches, so a
backbone whose keys do not match its checkpoint silently trains from scratch. ``StrictPretrained``
takes the same arguments, raises :class:`CheckpointMismatchError` naming the file and every
missing / unexpected / mis-shaped key, and logs how many tensors (and which key groups) loaded.

It is registered in MMEngine's root ``WEIGHT_INITIALIZERS``: the mmdet, mmseg, mmpretrain and mmkd
registries are its descendants, so ``init_cfg=dict(type='StrictPretrained', checkpoint=...)``
resolves under any ``default_scope``.
"""
import re
from collections import OrderedDict

from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's keys or shapes do not match the module it initialises."""


def _key_groups(keys) -> str:
    """'patch_embed(2) cls_token(1) layers.0(12) ...': which keys loaded, in a line."""
    groups = OrderedDict()
    for k in keys:
        parts = k.split('.')
        group = '.'.join(parts[:2]) if len(parts) > 2 else parts[0]
        groups[group] = groups.get(group, 0) + 1
    return ' '.join(f'{g}({n})' for g, n in groups.items())


def _shorten(keys, limit=20) -> str:
    keys = list(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


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
        map_location (str): where tensors are loaded. Defaults to 'cpu'.

    Raises:
        ValueError: ``checkpoint`` is None (the config's ``backbone_ckpt`` was never set).
        CheckpointMismatchError: missing, unexpected or mis-shaped keys; the module is untouched
            by missing/unexpected keys (checked before any copy).
    """

    def __init__(self, checkpoint, prefix=None, map_location='cpu'):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location

    def _state_dict(self) -> dict:
        ckpt = CheckpointLoader.load_checkpoint(self.checkpoint, map_location=self.map_location)
        state = ckpt
        for key in ('state_dict', 'model'):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
                break
        # DDP-saved weights carry a 'module.' prefix, as MMEngine's own loader strips
        state = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())
        if self.prefix:
            state = OrderedDict((k[len(self.prefix):], v) for k, v in state.items()
                                if k.startswith(self.prefix))
            if not state:
                raise CheckpointMismatchError(
                    f"StrictPretrained: '{self.checkpoint}' has no keys under prefix "
                    f"'{self.prefix}'")
        return state

    def __call__(self, module):
        name = module.__class__.__name__
        if self.checkpoint is None:
            raise ValueError(f'StrictPretrained: no checkpoint given for {name}: set the '
                             "config's backbone_ckpt (or model.backbone.init_cfg.checkpoint)")
        state = self._state_dict()
        expected = module.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        problems = []
        if missing:
            problems.append(f'missing keys ({len(missing)}): {_shorten(missing)}')
        if unexpected:
            problems.append(f'unexpected keys ({len(unexpected)}): {_shorten(unexpected)}')
        if not problems:
            try:
                # load_state_dict runs the module's pre-hooks first (e.g. the ViT's pos_embed
                # resize), so shapes are compared after them
                module.load_state_dict(state, strict=True)
            except RuntimeError as e:
                shapes = re.findall(r'size mismatch for (.+)', str(e))
                problems.append(f'mis-shaped keys ({len(shapes)}): ' + '; '.join(shapes)
                                if shapes else str(e))
        if problems:
            raise CheckpointMismatchError(
                f"StrictPretrained: '{self.checkpoint}' does not match {name}: "
                + ' | '.join(problems))

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
