"""Downstream fine-tuning of distilled students in MMDetection and MMSegmentation.

Importing this package (``custom_imports=dict(imports=['mmkd.downstream'])``) registers:

- ``StrictPretrained`` into MMEngine's root ``WEIGHT_INITIALIZERS`` (seen from every scope);
- ``PlainViT`` into mmdet's and mmseg's ``MODELS``;
- ``SimpleFeaturePyramid`` into mmdet's ``MODELS`` (mmseg configs use mmseg's ``MultiLevelNeck``);
- ``ComposedFMNISTCocoDataset`` into mmdet's and ``ComposedFMNISTSegDataset`` into mmseg's
  ``DATASETS``: the composed Fashion-MNIST set (docs/composed_fmnist.md), made on first use.

Each name is registered once per registry; a library that is not installed is skipped.
"""
from .composed import prepare_composed
from .strict_init import CheckpointMismatchError, StrictPretrainedInit, is_strict_pretrained
from .vit import LayerNorm2d, PlainViT, SimpleFeaturePyramid

__all__ = ['CheckpointMismatchError', 'StrictPretrainedInit', 'is_strict_pretrained',
           'LayerNorm2d', 'PlainViT', 'SimpleFeaturePyramid', 'prepare_composed']


def _register(registry, modules):
    for module in modules:
        if module.__name__ not in registry.module_dict:  # never the same name twice
            registry.register_module(module=module)


try:
    from mmdet.registry import DATASETS as DET_DATASETS
    from mmdet.registry import MODELS as DET_MODELS
except ImportError:  # mmdet not installed: the mmseg side still works
    DET_MODELS = DET_DATASETS = None
else:
    from .composed import ComposedFMNISTCocoDataset
    _register(DET_MODELS, [PlainViT, SimpleFeaturePyramid])
    _register(DET_DATASETS, [ComposedFMNISTCocoDataset])

try:
    from mmseg.registry import DATASETS as SEG_DATASETS
    from mmseg.registry import MODELS as SEG_MODELS
except ImportError:
    SEG_MODELS = SEG_DATASETS = None
else:
    from .composed import ComposedFMNISTSegDataset
    _register(SEG_MODELS, [PlainViT])
    _register(SEG_DATASETS, [ComposedFMNISTSegDataset])
