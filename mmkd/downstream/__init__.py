"""Downstream fine-tuning of distilled students in MMDetection and MMSegmentation.

Importing this package (``custom_imports=dict(imports=['mmkd.downstream'])``) registers:

- ``StrictPretrained`` into MMEngine's root ``WEIGHT_INITIALIZERS`` (seen from every scope);
- ``PlainViT`` into mmdet's and mmseg's ``MODELS``;
- ``SimpleFeaturePyramid`` into mmdet's ``MODELS`` (mmseg configs use mmseg's ``MultiLevelNeck``).

Each name is registered once per registry; a library that is not installed is skipped.
"""
from .strict_init import CheckpointMismatchError, StrictPretrainedInit, is_strict_pretrained
from .vit import LayerNorm2d, PlainViT, SimpleFeaturePyramid

__all__ = ['CheckpointMismatchError', 'StrictPretrainedInit', 'is_strict_pretrained',
           'LayerNorm2d', 'PlainViT', 'SimpleFeaturePyramid']


def _register(registry, modules):
    for module in modules:
        if module.__name__ not in registry.module_dict:  # never the same name twice
            registry.register_module(module=module)


try:
    from mmdet.registry import MODELS as DET_MODELS
except ImportError:  # mmdet not installed: the mmseg side still works
    DET_MODELS = None
else:
    _register(DET_MODELS, [PlainViT, SimpleFeaturePyramid])

try:
    from mmseg.registry import MODELS as SEG_MODELS
except ImportError:
    SEG_MODELS = None
else:
    _register(SEG_MODELS, [PlainViT])
