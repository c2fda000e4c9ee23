from .base_distiller import BaseDistiller
from .classification_distiller import ClassificationDistiller
from .cross_arch_distiller import CrossArchDistiller
from .segmentation_distiller import SegmentationDistiller

__all__ = ['BaseDistiller', 'ClassificationDistiller', 'CrossArchDistiller',
           'SegmentationDistiller']
