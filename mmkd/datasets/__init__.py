"""Datasets and samplers of mmkd: the teacher-logit cache (docs/teacher_cache.md)."""
from .cache_writer import cache_teacher_logits, check_cacheable
from .samplers import EpochIndexSampler
from .transforms import UNLABELLED, PartialLabels
from .teacher_logits import (SeededDataset, TeacherLogitsCache, TeacherLogitsDataset,
                             reconstruct_logits, sample_seeds, seeded_rng)

__all__ = ['EpochIndexSampler', 'PartialLabels', 'UNLABELLED', 'SeededDataset', 'TeacherLogitsCache', 'TeacherLogitsDataset',
           'cache_teacher_logits', 'check_cacheable', 'reconstruct_logits', 'sample_seeds',
           'seeded_rng']
