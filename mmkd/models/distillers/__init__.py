from .base_distiller import BaseDistiller
from .classification_distiller import ClassificationDistiller
from .cross_arch_distiller import (CrossArchDDP, CrossArchDistiller,
                                   CrossArchOptimWrapperConstructor, MultiViewGenerator)

__all__ = ['BaseDistiller', 'ClassificationDistiller', 'CrossArchDistiller', 'CrossArchDDP',
           'CrossArchOptimWrapperConstructor', 'MultiViewGenerator']
