"""What the analysis tools look at: models loaded from a config + checkpoint, and images.

A *subject* is one model under analysis (the student, the teacher, or the model of a plain
mmpretrain config) with the normalisation it expects. Models run on CPU, in eval mode.
"""
import copy
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from torch import Tensor

from mmkd.models.builder import build_model, checkpoint_state_dict, resolve_checkpoint
from mmkd.models.builder import load_strict as builder_load_strict
from mmkd.models.builder import sub_state_dict
from mmkd.models.normalization import renormalisation

ROLES = ('student', 'teacher', 'model')


@dataclass
class Subject:
    """One model under analysis.

    Attributes:
        role: ``'student'``, ``'teacher'`` or ``'model'`` (the model of a plain config).
        model: the classifier, in eval mode.
        normalise: a list of uint8 ``(C, H, W)`` images -> the model's input batch.
        checkpoint: the file its weights came from.
        label: short name for figures, e.g. ``'student (VisionTransformer)'``.
    """
    role: str
    model: nn.Module
    normalise: Callable[[Sequence[Tensor]], Tensor]
    checkpoint: Optional[str] = None
    label: str = ''

    def __post_init__(self):
        if not self.label:
            self.label = f'{self.role} ({backbone_name(self.model)})'


@dataclass
class ImageSet:
    """Images as the test pipeline gives them (uint8 ``(C, H, W)``) with their labels."""
    images: List[Tensor]
    labels: List[int]
    classes: Optional[List[str]] = None
    bgr: bool = False  # stored as BGR (the preprocessor flips them with to_rgb=True)
    source: Dict[str, object] = field(default_factory=dict)

    def __len__(self):
        return len(self.images)

    def class_name(self, idx: int) -> str:
        if self.classes is not None and 0 <= idx < len(self.classes):
            return str(self.classes[idx])
        return str(idx)

    def batches(self, batch_size: int):
        for start in range(0, len(self.images), batch_size):
            yield self.images[start:start + batch_size]

    def display(self, i: int):
        """Image ``i`` as a float numpy array in [0, 1], (H, W) grey or (H, W, 3) RGB."""
        img = self.images[i].float() / 255.
        if img.shape[0] == 1:
            return img[0].numpy()
        img = img[:3]
        if self.bgr:
            img = img.flip(0)
        return img.permute(1, 2, 0).clamp(0, 1).numpy()


def backbone_name(model: nn.Module) -> str:
    backbone = getattr(model, 'backbone', None)
    return type(backbone if backbone is not None else model).__name__


def load_config(config: Union[str, Config], cfg_options: Optional[dict] = None) -> Config:
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        if not osp.isfile(config):
            raise FileNotFoundError(f"config file '{config}' does not exist")
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f"config '{getattr(cfg, 'filename', config)}' has no 'model'")
    return cfg


def is_distillation(cfg: Config) -> bool:
    """A distillation config: its model names a student and a teacher."""
    model = cfg.model
    return isinstance(model, (dict, ConfigDict)) and 'student' in model and 'teacher' in model


# -- checkpoints ------------------------------------------------------------------------------
def model_state(path: str, role: str) -> dict:
    """The classifier's state dict in ``path``: a plain classifier checkpoint as is, a
    distillation checkpoint's ``student.*`` keys with the prefix removed."""
    state = checkpoint_state_dict(path, role=role)
    if any(k.startswith('student.') for k in state):
        state = sub_state_dict(state, 'student.')
    return state


def load_strict(model: nn.Module, path: str, role: str) -> None:
    """Load a classifier or distillation checkpoint into ``model`` with strict key matching."""
    builder_load_strict(model, path, role, state=model_state(path, role))


# -- normalisation ----------------------------------------------------------------------------
def data_preprocessor(cfg: Config) -> nn.Module:
    """The classifier data preprocessor the runner would build for ``cfg`` (the model's own,
    else the config's top-level ``data_preprocessor``)."""
    from mmengine.registry import DefaultScope

    from mmkd.registry import MODELS
    model = cfg.model
    pre = model.get('data_preprocessor') if isinstance(model, (dict, ConfigDict)) else None
    pre = dict(copy.deepcopy(pre if pre is not None else cfg.get('data_preprocessor') or {}))
    pre.setdefault('type', 'ClsDataPreprocessor')
    pre.pop('batch_augments', None)  # training only
    with DefaultScope.overwrite_default_scope('mmkd'):
        return MODELS.build(pre)


def normaliser(pre: nn.Module, teacher_norm: Optional[dict] = None):
    """uint8 images -> normalised batch, as the preprocessor does at test time; with
    ``teacher_norm``, re-normalised as :class:`ClassificationDistiller` does for its teacher."""
    scale = shift = None
    if teacher_norm is not None:
        scale, shift = renormalisation(pre, teacher_norm['mean'], teacher_norm['std'])

    def normalise(images: Sequence[Tensor]) -> Tensor:
        with torch.no_grad():
            inputs = pre(dict(inputs=list(images), data_samples=None), training=False)['inputs']
        if scale is not None:
            inputs = inputs * scale + shift
        return inputs
    return normalise


# -- models -----------------------------------------------------------------------------------
def load_student(cfg: Config, checkpoint: Optional[str]) -> Subject:
    """The student of a distillation config, or the model of a plain classifier config, with
    ``checkpoint`` (a distillation checkpoint: its ``student.*`` keys; or a classifier's)."""
    distill = is_distillation(cfg)
    role = 'student' if distill else 'model'
    if checkpoint is None:
        raise ValueError(f'the {role} needs a checkpoint (a distillation checkpoint, whose '
                         "'student.*' keys are used, or a plain classifier checkpoint)")
    spec = cfg.model.student if distill else cfg.model
    if isinstance(spec, (dict, ConfigDict)):
        spec = dict(copy.deepcopy(spec))
    model = build_model(spec, role)
    load_strict(model, checkpoint, role)
    return Subject(role, model.eval(), normaliser(data_preprocessor(cfg)), checkpoint)


def load_teacher(cfg: Config, teacher_ckpt: Optional[str] = None,
                 teacher: Optional[Union[str, dict]] = None) -> Subject:
    """The teacher: ``teacher`` (a config path / model name / dict) or the distillation config's
    ``model.teacher``, with ``teacher_ckpt`` or the config's ``model.teacher_ckpt``."""
    distill = is_distillation(cfg)
    spec = teacher if teacher is not None else (cfg.model.teacher if distill else None)
    if spec is None:
        raise ValueError('a plain classifier config has no teacher: pass one (--teacher '
                         'CONFIG_OR_MODEL_NAME --teacher-ckpt PATH)')
    if teacher_ckpt is None and distill and teacher is None:
        teacher_ckpt = cfg.model.get('teacher_ckpt')
    if teacher_ckpt is None:
        raise ValueError("the teacher needs a checkpoint: the config's model.teacher_ckpt is "
                         'None; pass --teacher-ckpt PATH')
    if isinstance(spec, (dict, ConfigDict)):
        spec = dict(copy.deepcopy(spec))
    model = build_model(spec, 'teacher')
    teacher_ckpt = resolve_checkpoint(teacher_ckpt, 'teacher', spec)  # a URL, 'pretrained'
    load_strict(model, teacher_ckpt, 'teacher')
    teacher_norm = cfg.model.get('teacher_norm') if distill and teacher is None else None
    return Subject('teacher', model.eval(), normaliser(data_preprocessor(cfg), teacher_norm),
                   teacher_ckpt)


def load_subjects(config: Union[str, Config], checkpoint: Optional[str] = None,
                  which: Optional[str] = None, teacher_ckpt: Optional[str] = None,
                  teacher: Optional[str] = None, cfg_options: Optional[dict] = None
                  ) -> List[Subject]:
    """The models a tool looks at, student first.

    Args:
        config: a distillation config (``model.student`` / ``model.teacher``) or a plain
            classifier config.
        checkpoint: the distillation checkpoint (its ``student.*`` keys) or a classifier
            checkpoint of the student / the plain config's model.
        which: ``'student'``, ``'teacher'`` or ``'both'``; default: ``'both'`` for a
            distillation config (or a plain one with ``teacher``), else the model alone.
        teacher_ckpt: overrides the config's ``model.teacher_ckpt``.
        teacher: another model to compare with (config path, mmpretrain model name).
    """
    cfg = load_config(config, cfg_options)
    has_teacher = is_distillation(cfg) or teacher is not None
    which = which or ('both' if has_teacher else 'student')
    if which not in ('student', 'teacher', 'both'):
        raise ValueError(f"which must be 'student', 'teacher' or 'both', got {which!r}")
    subjects = []
    if which in ('student', 'both'):
        subjects.append(load_student(cfg, checkpoint))
    if which in ('teacher', 'both'):
        subjects.append(load_teacher(cfg, teacher_ckpt, teacher))
    return subjects


# -- images -----------------------------------------------------------------------------------
def dataset_config(cfg: Config, split: Optional[str] = None) -> dict:
    """The config's test (else val) dataset, with its test pipeline (no augmentation) and
    ``split`` overridden when given."""
    for name in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(name)
        if loader and loader.get('dataset'):
            ds = dict(copy.deepcopy(loader['dataset']))
            break
    else:
        raise ValueError('the config has no test_dataloader/val_dataloader dataset to take '
                         'images from')
    if split is not None:
        if 'split' not in ds:
            raise ValueError(f"the config's {ds.get('type')} dataset has no 'split' argument; "
                             'leave the split unset to use its test images')
        ds['split'] = split
        if 'test_mode' in ds:
            # mmpretrain's MNIST datasets choose their files by test_mode (see the
            # fashion_mnist dataset config): it must follow the split
            ds['test_mode'] = split != 'train'
    return ds


_DATASETS: Dict[str, object] = {}


def _build_dataset(key: str, ds_cfg: dict):
    """Build (once per process and dataset config: parsing e.g. Fashion-MNIST's 60k training
    images takes seconds) the dataset."""
    from mmengine.registry import DefaultScope

    from mmkd.registry import DATASETS
    if key not in _DATASETS:
        with DefaultScope.overwrite_default_scope('mmkd'):
            dataset = DATASETS.build(copy.deepcopy(ds_cfg))
        if len(_DATASETS) >= 4:
            _DATASETS.pop(next(iter(_DATASETS)))
        _DATASETS[key] = dataset
    return _DATASETS[key]


def load_images(cfg: Union[str, Config], num: int, split: Optional[str] = None,
                start: int = 0) -> ImageSet:
    """Images ``start .. start + num - 1`` of the config's test dataset (or of ``split``)."""
    cfg = load_config(cfg) if not isinstance(cfg, Config) else cfg
    ds_cfg = dataset_config(cfg, split)
    dataset = _build_dataset(repr(ds_cfg), ds_cfg)
    if start + num > len(dataset):
        raise ValueError(f'asked for images {start}..{start + num - 1} but the '
                         f"{ds_cfg.get('type')} dataset (split {ds_cfg.get('split')!r}) has "
                         f'{len(dataset)}')
    images, labels = [], []
    for i in range(start, start + num):
        item = dataset[i]
        images.append(item['inputs'])
        sample = item.get('data_samples')
        label = getattr(sample, 'gt_label', None) if sample is not None else None
        labels.append(int(label[0]) if label is not None and len(label) else -1)
    classes = dataset.metainfo.get('classes')
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    return ImageSet(images, labels, list(classes) if classes else None,
                    bgr=bool(pre.get('to_rgb', False)),
                    source=dict(dataset=ds_cfg.get('type'), split=ds_cfg.get('split'),
                                start=start, num=num))
