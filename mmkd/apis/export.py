"""Turning a distillation checkpoint into checkpoints of the student alone, and the student's
own mmpretrain config next to them."""
import copy
import os
import os.path as osp
import warnings
from typing import Any, List, Optional, Tuple, Union

import torch
from mmengine.config import Config, ConfigDict

from mmkd.models.builder import checkpoint_state_dict, load_strict, model_config, sub_state_dict

#: what a test/inference config of the student keeps from the distillation config (the
#: training keys go: their hooks, optimizers and wrappers refer to the distiller)
KEPT_KEYS = ('val_dataloader', 'val_evaluator', 'val_cfg', 'test_dataloader', 'test_evaluator',
             'test_cfg', 'test_pipeline', 'env_cfg', 'default_hooks', 'visualizer',
             'vis_backends', 'log_level', 'randomness')
#: metrics that read what only the distiller puts in the data samples
TEACHER_METRICS = ('TeacherMetric', )
#: default hooks that act on a distiller only (the student's config has no teacher to check)
DISTILLER_HOOKS = ('TeacherCheckHook', )


def extract_student(ckpt_path: str, classifier_out: Optional[str] = None,
                    backbone_out: Optional[str] = None,
                    config: Union[str, Config, None] = None,
                    ema: Optional[bool] = None) -> Tuple[dict, dict]:
    """Write (a) a student-only classifier checkpoint, with the student's mmpretrain config
    beside it (same stem, ``.py``), and (b) a backbone-only checkpoint.

    (a) runs as is: ``tools/test.py STUDENT.py STUDENT.pth``, or mmpretrain's
    ``ImageClassificationInferencer('STUDENT.py', pretrained='STUDENT.pth')`` (see
    :func:`export_student_config`); (b) has keys relative to the backbone, so an mmdet/mmseg
    backbone loads it with ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and no
    missing/unexpected keys. Distillation-only modules (loss adapters, projectors, mask
    tokens, discriminators) live outside ``student.`` in the distiller and so never reach
    either file.

    Args:
        config: the distillation config (path or Config) the checkpoint was trained with;
            default: the one MMEngine's runner stored in the checkpoint (``meta.cfg``). With
            neither, (a) is written without its config, with a warning.
        ema: for a checkpoint of a run with ``EMAHook``: ``True`` exports the averaged (EMA)
            student, ``False`` the training weights; ``None`` exports what the checkpoint's
            ``state_dict`` holds, which for such a run is the EMA (see :func:`select_weights`).

    Returns:
        the two state dicts.
    """
    if not osp.isfile(ckpt_path):
        raise FileNotFoundError(f"distillation checkpoint '{ckpt_path}' does not exist")
    raw = torch.load(ckpt_path, map_location='cpu')  # weights_only: see mmkd.compat
    state = select_weights(checkpoint_state_dict(ckpt_path, role='distillation', ckpt=raw),
                           raw, ema, ckpt_path)
    student = sub_state_dict(state, 'student.')
    if not student:
        raise ValueError(f"'{ckpt_path}' has no 'student.' keys: not a distillation checkpoint "
                         f'(first keys: {list(state)[:5]})')
    backbone = sub_state_dict(student, 'backbone.')
    if not backbone:
        raise ValueError(f"the student in '{ckpt_path}' has no 'backbone.' keys")
    meta = dict(source=osp.abspath(ckpt_path))
    if isinstance(raw, dict) and 'ema_state_dict' in raw:
        meta['weights'] = 'training' if ema is False else 'ema'
    if isinstance(raw, dict) and 'dataset_meta' in raw.get('meta', {}):
        meta['dataset_meta'] = raw['meta']['dataset_meta']
    for out, sd in ((classifier_out, student), (backbone_out, backbone)):
        if out:
            os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
            torch.save(dict(meta=meta, state_dict=sd), out)
    if classifier_out:
        cfg = distillation_config(ckpt_path, raw, config)
        if cfg is None:
            warnings.warn(f"'{ckpt_path}' stores no config (meta.cfg) and none was given: "
                          f"'{student_config_path(classifier_out)}' not written; pass the "
                          'distillation config (--config)', stacklevel=2)
        else:
            source = config if isinstance(config, str) else f'the config stored in {ckpt_path}'
            export_student_config(cfg, classifier_out, student, source=source)
    return student, backbone


def select_weights(state: dict, raw: Any, ema: Optional[bool], ckpt_path: str = '') -> dict:
    """The EMA or the training weights of a checkpoint; ``state`` is its ``state_dict``.

    MMEngine's ``EMAHook`` saves the *averaged* weights as ``state_dict`` (so that the
    checkpoint deploys the EMA as is) and moves the *training* weights to ``ema_state_dict``,
    ``module.``-prefixed, beside the average's ``steps``; resuming swaps them back. So:
    ``ema=True`` is ``state`` (after checking that the run had an EMA), ``ema=False`` is
    ``state`` with the ``ema_state_dict`` entries put back, ``ema=None`` is ``state``.
    """
    ema_state = raw.get('ema_state_dict') if isinstance(raw, dict) else None
    if ema is None:
        return state
    if ema_state is None:
        if ema:
            raise ValueError(f"'{ckpt_path}' has no ema_state_dict: the run had no EMAHook, so "
                             'there are no averaged weights to export (drop --ema)')
        return state
    if ema:
        return state
    training = {k[len('module.'):]: v for k, v in ema_state.items() if k.startswith('module.')}
    unknown = sorted(set(training) - set(state))
    if unknown:
        raise ValueError(f"'{ckpt_path}': ema_state_dict has keys the state_dict lacks "
                         f'({unknown[:5]}): not a checkpoint written by EMAHook')
    return {**state, **training}


def student_config_path(classifier_out: str) -> str:
    """``work_dirs/student.pth`` -> ``work_dirs/student.py``."""
    return osp.splitext(classifier_out)[0] + '.py'


def distillation_config(ckpt_path: str, raw: Any, config: Union[str, Config, None] = None
                        ) -> Optional[Config]:
    """``config`` (a path or Config), else the config the runner saved in the checkpoint."""
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if config is not None:
        if not osp.isfile(config):
            raise FileNotFoundError(f"distillation config '{config}' does not exist")
        return Config.fromfile(config)
    text = raw.get('meta', {}).get('cfg') if isinstance(raw, dict) else None
    if not isinstance(text, str):
        return None
    return Config.fromstring(text, file_format='.py')


def _mmkd_type_names() -> set:
    """Type names registered by mmkd itself (not inherited from mmpretrain / MMEngine)."""
    from mmkd import registry
    names = set()
    for value in vars(registry).values():
        if hasattr(value, 'module_dict') and getattr(value, 'scope', None) == 'mmkd':
            names.update(value.module_dict)
    return names


def _scope_mmkd_types(node, names: set, found: List[str]):
    """``type='CSKDClsHead'`` -> ``type='mmkd.CSKDClsHead'``, at any depth: the config is in
    mmpretrain's scope (mmpretrain's ``get_model`` builds there whatever the config says), and
    a scoped name reaches mmkd's child registries from it."""
    if isinstance(node, (dict, ConfigDict)):
        out = {}
        for k, v in node.items():
            if k == 'type' and isinstance(v, str) and '.' not in v and v in names:
                found.append(v)
                v = f'mmkd.{v}'
            out[k] = _scope_mmkd_types(v, names, found)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_scope_mmkd_types(v, names, found) for v in node)
    return node


def _uses_mmkd(node) -> bool:
    if isinstance(node, dict):
        return any((k == 'type' and isinstance(v, str) and v.startswith('mmkd.'))
                   or _uses_mmkd(v) for k, v in node.items())
    if isinstance(node, (list, tuple)):
        return any(_uses_mmkd(v) for v in node)
    return False


def _drop_pretrained_init(node):
    """A ``Pretrained`` init_cfg would fetch the original weights the exported checkpoint
    replaces (over the network, at ``init_weights``); other init_cfgs stay."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node.pop('init_cfg')
        for v in node.values():
            _drop_pretrained_init(v)
    elif isinstance(node, list):
        for v in node:
            _drop_pretrained_init(v)


def student_config(cfg: Config, checkpoint: Optional[str] = None) -> Config:
    """The student's own mmpretrain config from distillation config ``cfg``: the student model
    (an ``ImageClassifier``, as the distiller builds it) with the distillation run's data
    preprocessor (the normalisation the student was trained with), and the run's
    val/test pipeline, dataloaders and evaluators; ``load_from=checkpoint``. Metrics of the
    teacher's predictions and distiller-only default hooks (``TeacherCheckHook``) are dropped;
    mmkd types are scoped ``mmkd.`` and mmkd imported.
    """
    if 'student' not in cfg.get('model', {}):
        raise ValueError(f"config '{cfg.filename}' is not a distillation config: its model has "
                         'no student')
    model = model_config(cfg.model.student, 'student')
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor')
    if pre is None:  # the distiller then only stacked the images
        pre = model.get('data_preprocessor')
    model['data_preprocessor'] = {'type': 'ClsDataPreprocessor', **dict(pre or {})}
    _drop_pretrained_init(model)

    out = dict(model=model, data_preprocessor=copy.deepcopy(model['data_preprocessor']))
    for key in KEPT_KEYS:
        if cfg.get(key) is not None:
            out[key] = copy.deepcopy(cfg[key])
    hooks = out.get('default_hooks')
    if isinstance(hooks, dict):
        out['default_hooks'] = {
            name: hook for name, hook in hooks.items()
            if not (isinstance(hook, dict)
                    and str(hook.get('type', '')).split('.')[-1] in DISTILLER_HOOKS)}
    for key in ('val_evaluator', 'test_evaluator'):
        metrics = out.get(key)
        if metrics is None:
            continue
        listed = metrics if isinstance(metrics, (list, tuple)) else [metrics]
        kept = [m for m in listed if str(m.get('type', '')).split('.')[-1]
                not in TEACHER_METRICS]
        out[key] = kept if isinstance(metrics, (list, tuple)) else (kept[0] if kept else None)
    names, found = _mmkd_type_names(), []
    out = _scope_mmkd_types(out, names, found)
    out['default_scope'] = 'mmpretrain'
    if found:
        out['custom_imports'] = dict(imports=['mmkd'], allow_failed_imports=False)
    if checkpoint is not None:
        out['load_from'] = osp.abspath(checkpoint)
    return Config(out)


def _build_student(cfg: Config) -> torch.nn.Module:
    """The model as mmpretrain's ``get_model`` builds it: in mmpretrain's scope."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(copy.deepcopy(cfg.model))


def _prediction_fields(model: torch.nn.Module, cfg: Config) -> set:
    """Which data-sample fields the student's ``predict`` fills, on one blank image."""
    from mmkd.analysis.complexity import input_shape
    c, h, w = input_shape(cfg)
    with torch.no_grad():
        samples = model(torch.zeros(1, c, h, w), mode='predict')
    return set(samples[0].keys())


def export_student_config(cfg: Config, classifier_ckpt: str,
                          student_state: Optional[dict] = None, out: Optional[str] = None,
                          source: Optional[str] = None) -> str:
    """Write the student's config (:func:`student_config`) for ``classifier_ckpt`` to ``out``
    (default: the checkpoint's path with ``.py``), after checking that it builds in mmpretrain's
    scope and that the checkpoint loads into it strictly. ``PredFieldMetric`` s of fields the
    student does not predict itself (e.g. a distiller's ``noisy`` evaluation) are dropped.

    Returns:
        the config's path.
    """
    out = out or student_config_path(classifier_ckpt)
    exported = student_config(cfg, classifier_ckpt)
    model = _build_student(exported).eval()
    # the promise of the file: the checkpoint and this config fit, key for key
    load_strict(model, classifier_ckpt, 'student', state=student_state)
    fields = None
    for key in ('val_evaluator', 'test_evaluator'):
        metrics = exported.get(key)
        if not isinstance(metrics, list):
            continue
        kept = []
        for m in metrics:
            if str(m.get('type', '')).split('.')[-1] == 'PredFieldMetric':
                fields = _prediction_fields(model, exported) if fields is None else fields
                if f"{m['field']}_pred_label" not in fields:
                    continue
            kept.append(m)
        exported[key] = kept
    for key in ('val_evaluator', 'test_evaluator'):
        if key in exported and not exported[key]:  # only teacher metrics were there
            exported[key] = [dict(type='Accuracy', topk=(1, ))]
    if not _uses_mmkd(exported.to_dict()):  # the dropped metrics were its only mmkd types
        exported.pop('custom_imports', None)
    source = source or cfg.filename or 'a distillation config'
    header = (f'# The student of {source} on its own: an mmpretrain config written by\n'
              f'# mmkd.apis.extract_student for {osp.basename(classifier_ckpt)}:\n'
              f'#   python tools/test.py {osp.basename(out)} {osp.basename(classifier_ckpt)}\n')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(header + exported.pretty_text)
    return out
