"""Data transforms of mmkd."""
from .partial_labels import UNLABELLED, PartialLabels

__all__ = ['PartialLabels', 'UNLABELLED']
