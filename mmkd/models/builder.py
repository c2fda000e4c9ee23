"""Building the student/teacher from a config entry and loading the teacher's checkpoint."""
import copy
import difflib
import os
import os.path as osp
import re
from typing import Optional, Tuple, Union
from urllib.parse import urlparse

import torch.nn as nn
from mmengine.config import Config, ConfigDict

from mmkd.registry import MODELS
from mmkd.utils.checkpoint import load_checkpoint_file

ModelSpec = Union[dict, str]
#: a teacher checkpoint: a path / URL / ``'pretrained'``, or ``dict(path=..., prefix=...)``
CheckpointSpec = Union[str, dict]

#: ``teacher_ckpt`` value meaning "the weights mmpretrain's model index lists for the teacher"
PRETRAINED = 'pretrained'


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


# -- where a checkpoint comes from ------------------------------------------------------------
class CheckpointDownloadError(RuntimeError):
    """A checkpoint URL could not be fetched into the hub cache."""


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(('http://', 'https://'))


def hub_cache_path(url: str) -> str:
    """Where ``url``'s file lives in the torch hub cache: ``<hub dir>/checkpoints/<file name>``,
    the place ``torch.hub.load_state_dict_from_url`` and MMEngine's ``load_from_http`` use, so
    a file fetched by either (or placed there by hand) is found. The hub dir follows
    ``torch.hub.set_dir`` / ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``), read now."""
    import torch.hub
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f"checkpoint URL '{url}' names no file")
    return osp.join(torch.hub.get_dir(), 'checkpoints', name)


def _download(url: str, dst: str, role: str) -> None:
    import torch.hub
    os.makedirs(osp.dirname(dst), exist_ok=True)
    try:
        # writes a temporary file and renames it when complete: an interrupted download
        # leaves nothing at dst that a later run would take for the checkpoint
        torch.hub.download_url_to_file(url, dst, progress=False)
    except Exception as e:  # URLError, HTTPError, timeouts, refused connections, ...
        raise CheckpointDownloadError(
            f"{role} checkpoint: downloading '{url}' failed ({type(e).__name__}: {e}). "
            f"Without network access, download it elsewhere and place it at '{dst}' (the torch "
            'hub cache: $TORCH_HOME/hub/checkpoints/, TORCH_HOME defaulting to '
            '~/.cache/torch)') from None


def download_checkpoint(url: str, role: str = 'teacher') -> str:
    """The local file of checkpoint ``url``, downloaded into the hub cache on first use.

    Not ``load_from_http`` / ``load_state_dict_from_url`` themselves: they would cache to the
    same place but unpickle with ``weights_only=False``, while every mmkd checkpoint load goes
    through torch's safe loader (``mmkd.compat``). As MMEngine does, in a distributed run rank 0
    downloads first and the others wait for it; a rank of another node that does not share the
    cache then downloads its own copy.
    """
    from mmengine.dist import barrier, get_dist_info
    dst = hub_cache_path(url)
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(dst):
        _download(url, dst, role)
    if world_size > 1:
        barrier()
        if rank > 0 and not osp.isfile(dst):
            _download(url, dst, role)
    return dst


def pretrained_url(spec: ModelSpec, role: str = 'teacher') -> str:
    """The weights URL mmpretrain's model index (metafile ``Weights``) gives model name
    ``spec``, for ``teacher_ckpt='pretrained'``."""
    if not isinstance(spec, str) or spec.endswith('.py') or '::' in spec:
        shown = f"config file '{spec}'" if isinstance(spec, str) else 'an inline config dict'
        raise ValueError(
            f"{role}_ckpt='{PRETRAINED}' takes the weights mmpretrain's model index lists for an "
            f'mmpretrain model name (e.g. {role}="resnet50_8xb32_in1k"), but the {role} is '
            f'{shown}: give {role}_ckpt as a checkpoint path or an http(s) URL')
    from mmpretrain.apis import ModelHub, list_models
    try:
        weights = ModelHub.get(spec).weights
    except ValueError:
        near = difflib.get_close_matches(spec, list_models(), n=6, cutoff=0.5)
        raise ValueError(f"{role}_ckpt='{PRETRAINED}': '{spec}' is not an mmpretrain model name. "
                         f'Nearest model names: {near}') from None
    if not weights:
        raise ValueError(f"{role}_ckpt='{PRETRAINED}': mmpretrain's model index lists no weights "
                         f"for '{spec}'; give a checkpoint path or URL")
    return weights


def checkpoint_spec(ckpt: CheckpointSpec, role: str = 'teacher') -> Tuple[str, Optional[str]]:
    """``(path, prefix)`` of a checkpoint given as a string (no prefix) or as
    ``dict(path=..., prefix='student.')``: load only the keys under ``prefix``, the prefix
    removed, e.g. the student of a distillation checkpoint as a teacher."""
    if isinstance(ckpt, (dict, ConfigDict)):
        unknown = sorted(set(ckpt) - {'path', 'prefix'})
        if unknown or not isinstance(ckpt.get('path'), str):
            raise ValueError(f"{role}_ckpt as a dict takes dict(path='file.pth', "
                             f"prefix='student.'), got {dict(ckpt)}")
        prefix = ckpt.get('prefix')
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise ValueError(f"{role}_ckpt: prefix must be a non-empty string such as "
                             f"'student.', got {prefix!r}")
        return ckpt['path'], prefix
    return ckpt, None


def resolve_checkpoint(path: CheckpointSpec, role: str = 'teacher',
                       spec: Optional[ModelSpec] = None) -> str:
    """The local file of a checkpoint given as a local path, an ``http(s)://`` URL (downloaded
    once into the hub cache, see :func:`download_checkpoint`), or ``'pretrained'``: the weights
    of model name ``spec`` in mmpretrain's model index. ``dict(path=..., prefix=...)``: the
    file of its ``path`` (the prefix is :func:`load_teacher_checkpoint`'s business)."""
    path, _ = checkpoint_spec(path, role)
    if path == PRETRAINED and not osp.isfile(path):  # a local file of that name still wins
        if spec is None:
            raise ValueError(f"{role}_ckpt='{PRETRAINED}' needs the {role}'s mmpretrain model "
                             'name to look its weights up')
        path = pretrained_url(spec, role)
    if is_url(path):
        return download_checkpoint(path, role)
    return path


def checkpoint_state_dict(path: str, role: str = 'teacher', ckpt=None) -> dict:
    """The state dict stored in ``path`` (its ``state_dict`` or ``model`` entry, or the file
    itself), DDP's ``module.`` prefix removed, loaded with
    torch's safe loader; ``ckpt``: the file's already loaded content, to read it only once.
    ``path`` may be an ``http(s)://`` URL: see :func:`resolve_checkpoint`."""
    if ckpt is None:
        path = resolve_checkpoint(path, role)
        if not isinstance(path, str) or not osp.isfile(path):
            raise FileNotFoundError(f"{role} checkpoint '{path}' does not exist")
        # weights_only (see mmkd.compat); a damaged file: an error naming it, size, what failed
        ckpt = load_checkpoint_file(path, role)
    state = ckpt
    for key in ('state_dict', 'model'):  # MMEngine's files; timm's and others' training files
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            state = ckpt[key]
            break
    if not isinstance(state, dict):
        raise ValueError(f"{role} checkpoint '{path}' holds no state dict")
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


#: key prefixes of a distiller's state dict (mmkd's, and those of distillers that save both)
DISTILLATION_PREFIXES = ('student.', 'teacher.')


def distillation_prefixes(state: dict) -> list:
    """The distiller prefixes (``student.``, ``teacher.``) that keys of ``state`` carry."""
    return [p for p in DISTILLATION_PREFIXES if any(k.startswith(p) for k in state)]


def _distillation_checkpoint_error(model: nn.Module, path: str, role: str,
                                   prefixes: list) -> ValueError:
    keys = ', '.join(f"'{p}*'" for p in prefixes)
    hint = (f" (or, for a teacher, load its student part directly: teacher_ckpt=dict(path="
            f"'{path}', prefix='student.'))" if role == 'teacher' else '')
    return ValueError(
        f"{role} checkpoint '{path}' is a distillation checkpoint (a distiller's state, keys "
        f'{keys}), not a {type(model).__name__} checkpoint. Export its student first: '
        f'python tools/model_converters/extract_student.py {path} --classifier student.pth, '
        f'and use student.pth{hint}')


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model it is loaded into."""


def _shorten(keys, limit: int = 20) -> str:
    keys = list(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def load_state_strict(model: nn.Module, state: dict, what: str,
                      target: Optional[str] = None) -> None:
    """Load ``state`` into ``model`` with every key and shape matching, else a
    :class:`CheckpointMismatchError` "``what`` does not match ``target`` (default: the model's
    class name): missing keys (n): ... |
    unexpected keys (n): ... | mis-shaped keys (n): ...". Nothing is copied when keys are
    missing or unexpected. The data preprocessor's buffers are configuration, not weights:
    left out on both sides. Shapes are compared after the model's load hooks ran (e.g.
    mmpretrain's ViT resizing its position embedding)."""
    state = {k: v for k, v in state.items() if not k.startswith('data_preprocessor.')}
    expected = [k for k in model.state_dict() if not k.startswith('data_preprocessor.')]
    missing = [k for k in expected if k not in state]
    known = set(expected)
    unexpected = [k for k in state if k not in known]
    problems = []
    if missing:
        problems.append(f'missing keys ({len(missing)}): {_shorten(missing)}')
    if unexpected:
        problems.append(f'unexpected keys ({len(unexpected)}): {_shorten(unexpected)}')
    if not problems:
        try:
            # strict=False only for the preprocessor buffers left out above
            model.load_state_dict(state, strict=False)
        except RuntimeError as e:
            shapes = re.findall(r'size mismatch for ([^\n]+)', str(e))
            problems.append(f'mis-shaped keys ({len(shapes)}): ' + '; '.join(shapes) if shapes
                            else ' '.join(str(e).split()))
    if problems:
        raise CheckpointMismatchError(f'{what} does not match {target or type(model).__name__}: '
                                      + ' | '.join(problems))


def sub_state_dict(state: dict, prefix: str, what: Optional[str] = None) -> dict:
    """The entries of ``state`` under ``prefix`` (e.g. ``'student.'``), the prefix removed;
    with ``what`` (the checkpoint, for the message), none is an error naming what it holds."""
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if what is not None and not sub:
        tops = sorted({k.split('.', 1)[0] + '.' for k in state})[:8]
        raise CheckpointMismatchError(f"{what} has no keys under prefix '{prefix}'; its keys "
                                      f'start with {tops}')
    return sub


def load_strict(model: nn.Module, path: str, role: str = 'teacher',
                state: Optional[dict] = None, prefix: Optional[str] = None) -> None:
    """Load ``path`` (or its already extracted ``state``) into ``model``; any missing,
    unexpected or mis-shaped key is an error naming the file and the keys
    (:func:`load_state_strict`): a half-loaded teacher silently teaches noise, a half-loaded
    model under analysis silently misleads.

    ``prefix``: load only the keys under it (removed), e.g. ``'student.'`` of a distillation
    checkpoint. Without one, a distillation checkpoint (``student.*`` / ``teacher.*`` keys
    that the model does not have) is an error saying to export its student first.
    """
    state = checkpoint_state_dict(path, role) if state is None else state
    what = f"{role} checkpoint '{path}'"
    if prefix is not None:
        state = sub_state_dict(state, prefix, what)
    else:
        found = distillation_prefixes(state)
        if found and not distillation_prefixes(model.state_dict()):
            raise _distillation_checkpoint_error(model, path, role, found)
    load_state_strict(model, state, what, f'the {role} model ({type(model).__name__})')


def load_teacher_checkpoint(teacher: nn.Module, ckpt: CheckpointSpec,
                            spec: Optional[ModelSpec] = None) -> None:
    """Load the teacher strictly from ``ckpt``: a local file, an ``http(s)://`` URL,
    ``'pretrained'`` (with ``spec``, the teacher's mmpretrain model name), or
    ``dict(path=<one of those>, prefix='student.')`` to take the keys under that prefix (the
    student of a distillation run as the teacher of the next)."""
    path, prefix = checkpoint_spec(ckpt, 'teacher')
    load_strict(teacher, resolve_checkpoint(path, 'teacher', spec), 'teacher', prefix=prefix)
