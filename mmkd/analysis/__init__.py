"""Seeing what distillation does: attention maps, feature transferability, training curves.

The computation behind ``tools/analysis/*.py``; see ``docs/analysis.md``.
"""
from .loading import ImageSet, Subject, load_images, load_subjects  # noqa: F401
