"""Building the student/teacher from a config entry and loading the teacher's checkpoint."""
import copy
import difflib
import os.path as osp
import re
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict

from mmkd.registry import MODELS

ModelSpec = Union[dict, str]


def model_config(spec: ModelSpec, role: str) -> dict:
    """A model config dict from an inline dict, a local config file, an mmpretrain package
    config (``'mmpretrain::deit/deit-tiny_4xb256_in1k.py'``) or an mmpretrain model name
    (``'deit3-small-p16_3rdparty_in1k'``)."""
    if isinstance(spec, (dict, ConfigDict)):
        return copy.deepcopy(dict(spec))
    if not isinstance(spec, str):
        raise TypeError(f'{role}: expected a model config dict or a string, got {type(spec)}')
    if '::' in spec:
        from mmengine.hub import get_config
        return dict(get_config(spec).model)
    if spec.endswith('.py'):
        if not osp.isfile(spec):
            raise FileNotFoundError(f"{role}: config file '{spec}' does not exist")
        return dict(Config.fromfile(spec).model)
    from mmpretrain.apis import ModelHub, list_models
    try:
        return dict(ModelHub.get(spec).config.model)
    except ValueError:
        near = difflib.get_close_matches(spec, list_models(), n=6, cutoff=0.5)
        raise ValueError(f"{role}: '{spec}' is neither a config file nor an mmpretrain model "
                         f'name. Nearest model names: {near}') from None


def build_model(spec: ModelSpec, role: str, scope: str = 'mmkd') -> nn.Module:
    """Build the model in ``scope``, so that its sub-modules may be mmkd types (e.g.
    ``DistillTokenClsHead`` inside an mmpretrain ``ImageClassifier``) with or without a runner."""
    from mmengine.registry import DefaultScope
    cfg = model_config(spec, role)
    # A package config's model carries no init_cfg with pretrained weights we could fetch here,
    # and the teacher's weights come from teacher_ckpt; the model's own data_preprocessor is
    # unused (the distiller preprocesses once for both models).
    cfg.pop('data_preprocessor', None)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


def checkpoint_state_dict(path: str, role: str = 'teacher', ckpt=None) -> dict:
    """The state dict stored in ``path`` (``state_dict`` entry, or the file itself), loaded with
    torch's safe loader; ``ckpt``: the file's already loaded content, to read it only once."""
    if ckpt is None:
        if not isinstance(path, str) or not osp.isfile(path):
            raise FileNotFoundError(f"{role} checkpoint '{path}' does not exist")
        ckpt = torch.load(path, map_location='cpu')  # weights_only: see mmkd.compat
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{role} checkpoint '{path}' holds no state dict")
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def load_strict(model: nn.Module, path: str, role: str = 'teacher',
                state: Optional[dict] = None) -> None:
    """Load ``path`` (or its already extracted ``state``) into ``model``; any missing,
    unexpected or mis-shaped key is an error naming the file and the keys: a half-loaded
    teacher silently teaches noise, a half-loaded model under analysis silently misleads."""
    state = checkpoint_state_dict(path, role) if state is None else state
    # the data preprocessor's buffers are configuration, not weights
    state = {k: v for k, v in state.items() if not k.startswith('data_preprocessor.')}
    expected = {k for k in model.state_dict() if not k.startswith('data_preprocessor.')}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{role} checkpoint '{path}' does not match the {role} model "
            f'({type(model).__name__}): {len(missing)} missing keys {missing[:10]}, '
            f'{len(unexpected)} unexpected keys {unexpected[:10]}')
    try:
        # strict=False only for the preprocessor buffers filtered above; keys are checked,
        # and a shape mismatch still raises (after mmpretrain's pos_embed resizing hooks ran)
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        detail = ' '.join(str(e).split())  # one line: torch's message spans several
        raise ValueError(f"{role} checkpoint '{path}' does not match the {role} model: "
                         f'{detail}') from None


def load_teacher_checkpoint(teacher: nn.Module, path: str) -> None:
    load_strict(teacher, path, 'teacher')


def sub_state_dict(state: dict, prefix: str) -> dict:
    """The entries of ``state`` under ``prefix`` (e.g. ``'student.'``), the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
