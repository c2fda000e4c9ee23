"""Datasets and samplers of mmkd: the teacher-logit cache (docs/teacher_cache.md)."""
from .batch_cache_writer import check_batch_cacheable, verify_batch_cache, write_batch_cache
from .batch_logits import BatchLogitsCache, BatchTeacherLogitsDataset
from .cache_writer import cache_teacher_logits, check_cacheable
from .global_batch_sampler import BatchSlot, GlobalBatchSampler
from .labelled_batch_sampler import LabelledBatchSampler
from .samplers import EpochIndexSampler
from .transforms import UNLABELLED, PartialLabels
from .teacher_logits import (SeededDataset, TeacherLogitsCache, TeacherLogitsDataset,
                             epoch_seeds, reconstruct_logits, sample_seeds, seed_all, seeded_rng)

__all__ = ['BatchLogitsCache', 'BatchSlot', 'BatchTeacherLogitsDataset', 'EpochIndexSampler',
           'GlobalBatchSampler', 'LabelledBatchSampler', 'PartialLabels', 'SeededDataset',
           'TeacherLogitsCache', 'TeacherLogitsDataset', 'UNLABELLED', 'cache_teacher_logits',
           'check_batch_cacheable', 'check_cacheable', 'epoch_seeds', 'reconstruct_logits',
           'sample_seeds', 'seed_all', 'seeded_rng', 'verify_batch_cache', 'write_batch_cache']
