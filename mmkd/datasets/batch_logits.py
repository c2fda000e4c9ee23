"""Teacher-logit cache of whole training batches, mixup and cutmix included: the teacher's
logits of every slot of every global batch of every epoch, as
:class:`~mmkd.datasets.GlobalBatchSampler` and
:class:`~mmkd.models.SeededClsDataPreprocessor` compose and mix them.

Layout of a cache directory (``docs/teacher_cache.md``)::

    plan.json         what the batches are: seed, global batch size, mixing group, epochs,
                      samples, pipeline and batch augments (written first; a resumed writer
                      must match it)
    writer-<r>.bin    records of writer r, appended one global batch (G slots) at a time;
                      a slot is (values (k,), indices (k,), lse) of the mixed image
    writer-<r>.log    "epoch batch row" per global batch, written after its records are on disk
    index.npy         (E, B, 2) int64: (writer, row) of every global batch; with meta.json,
                      written once every batch is there
    meta.json         plan.json + topk, dtypes, teacher, complete=true
"""
import json
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.logging import print_log

from mmkd.registry import DATASETS

from .global_batch_sampler import BatchSlot
from .teacher_logits import SeededDataset, pipeline_repr, reconstruct_logits

FORMAT = 'mmkd-teacher-logits-batches'
VERSION = 1
PLAN_FILE, META_FILE, INDEX_FILE = 'plan.json', 'meta.json', 'index.npy'
#: the entries of plan.json a cache and a run must agree on
PLAN_KEYS = ('seed', 'global_batch_size', 'mix_group', 'num_samples')


def record_dtype(topk: int, values_dtype: str, indices_dtype: str) -> np.dtype:
    """One slot: the top-k logits of its (mixed) image, their classes, the full log-sum-exp."""
    return np.dtype([('values', values_dtype, (topk, )), ('indices', indices_dtype, (topk, )),
                     ('lse', 'float32')])


def writer_files(path: str, writer: int):
    return (osp.join(path, f'writer-{writer}.bin'), osp.join(path, f'writer-{writer}.log'))


def read_log(log_file: str):
    """The ``(epoch, batch, row)`` lines of a writer's log (a torn last line is dropped)."""
    done = []
    if osp.isfile(log_file):
        with open(log_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and line.endswith('\n'):
                    done.append(tuple(int(p) for p in parts))
    return done


class BatchLogitsCache:
    """A complete cache directory, read with memory maps (opened lazily, once per process:
    dataloader workers reopen them and share the page cache)."""

    def __init__(self, path: str):
        self.path = path
        self.meta_path = osp.join(path, META_FILE)
        if not osp.isfile(self.meta_path):
            hint = (' (plan.json is there: the writer has not finished; run the same '
                    'tools/cache_teacher_logits.py command again to complete it)'
                    if osp.isfile(osp.join(path, PLAN_FILE)) else '')
            raise FileNotFoundError(f'no complete teacher-logit batch cache at {path} '
                                    f'({META_FILE} missing){hint}')
        with open(self.meta_path) as f:
            self.meta = json.load(f)
        if self.meta.get('format') != FORMAT or self.meta.get('version') != VERSION:
            raise ValueError(f'{self.meta_path}: not a {FORMAT} v{VERSION} cache '
                             f"(format={self.meta.get('format')!r}, "
                             f"version={self.meta.get('version')!r}); a per-sample cache "
                             '(mmkd-teacher-logits) is read by TeacherLogitsDataset')
        self.dtype = record_dtype(self.topk, self.meta['values_dtype'],
                                  self.meta['indices_dtype'])
        self.index = np.load(osp.join(path, INDEX_FILE))
        expected = (self.epochs, self.num_batches, 2)
        if self.index.shape != expected:
            raise ValueError(f'{osp.join(path, INDEX_FILE)} has shape {self.index.shape}, '
                             f'{self.meta_path} says {expected}')
        self._maps: Dict[int, np.memmap] = {}
        self._pid = None
        for writer in np.unique(self.index[..., 0]):
            self._records(int(writer))  # sizes checked now

    epochs = property(lambda self: int(self.meta['epochs']))
    num_batches = property(lambda self: int(self.meta['num_batches']))
    global_batch_size = property(lambda self: int(self.meta['global_batch_size']))
    num_classes = property(lambda self: int(self.meta['num_classes']))
    topk = property(lambda self: int(self.meta['topk']))

    def _records(self, writer: int) -> np.memmap:
        if self._pid != os.getpid():
            self._maps, self._pid = {}, os.getpid()
        if writer not in self._maps:
            file = writer_files(self.path, writer)[0]
            rows = int(self.index[..., 1][self.index[..., 0] == writer].max()) + 1
            size = osp.getsize(file) if osp.isfile(file) else 0
            if size < rows * self.global_batch_size * self.dtype.itemsize:
                raise ValueError(f'{file}: {size} bytes, but {INDEX_FILE} indexes {rows} global '
                                 f'batches of {self.global_batch_size} slots there')
            self._maps[writer] = np.memmap(file, dtype=self.dtype, mode='r',
                                           shape=(rows, self.global_batch_size))
        return self._maps[writer]

    def __getstate__(self):
        return {**self.__dict__, '_maps': {}, '_pid': None}

    def slots(self, epoch: int, batch: int) -> np.ndarray:
        """The (G, ) records of global batch ``batch`` of ``epoch``."""
        writer, row = (int(v) for v in self.index[epoch, batch])
        return self._records(writer)[row]

    def logits(self, epoch: int, batch: int, slot: int) -> np.ndarray:
        """The (K, ) float32 logits of the image at ``slot`` (see ``reconstruct_logits``)."""
        rec = self.slots(epoch, batch)[slot]
        return reconstruct_logits(rec['values'], rec['indices'], rec['lse'], self.num_classes)

    def check_plan(self, what: str, **plan) -> None:
        """An error naming both values where ``plan`` and the cache's disagree."""
        diff = [f'{k} {plan[k]} ({what}) vs {self.meta[k]} (cache)' for k in PLAN_KEYS
                if k in plan and plan[k] != self.meta[k]]
        if diff:
            raise ValueError(f'teacher-logit batch cache {self.meta_path} was made for other '
                             f'batches than {what}: ' + '; '.join(diff) + '. Remake the cache '
                             'with this config, or train with the cache\'s settings '
                             '(randomness.seed, GlobalBatchSampler global_batch_size/mix_group)')

    def nbytes(self) -> int:
        return sum(osp.getsize(osp.join(self.path, f)) for f in os.listdir(self.path))


@DATASETS.register_module()
class BatchTeacherLogitsDataset(SeededDataset):
    """Training data with the teacher's cached logits of the *mixed* images
    (``teacher_logits``, (K, ) float32, a data field of each data sample) for
    ``ClassificationDistiller(logit_cache=True)`` with mixup/cutmix.

    Sample it with :class:`~mmkd.datasets.GlobalBatchSampler` (built with the run's seed and
    the cache's ``global_batch_size`` and ``mix_group``: checked when the dataloader is built)
    and preprocess with :class:`~mmkd.models.SeededClsDataPreprocessor`: each slot's image is
    augmented under its seed and mixed under its group's, as when the cache was made, and gets
    the logits the teacher gave that mixed image.

    Args:
        dataset (dict | Dataset): the training dataset the cache was made from (its pipeline
            is checked against the cache's record unless ``check_pipeline=False``).
        cache (str): the cache directory.
        num_classes (int, optional): checked against the cache; default: the dataset's classes.
        check_pipeline (bool): error if the pipeline differs from the cache's.
    """

    def __init__(self, dataset, cache: str, num_classes: Optional[int] = None,
                 check_pipeline: bool = True):
        self.cache = BatchLogitsCache(cache)
        super().__init__(dataset)
        meta = self.cache.meta
        self.cache.check_plan('the training dataset', num_samples=len(self.dataset))
        if num_classes is None and 'classes' in self.metainfo:
            num_classes = len(self.metainfo['classes'])
        if num_classes is not None and num_classes != self.cache.num_classes:
            raise ValueError(f'teacher-logit batch cache {self.cache.meta_path} holds '
                             f'{self.cache.num_classes} classes, the dataset {num_classes}')
        mine = pipeline_repr(self.dataset)
        if check_pipeline and mine is not None and mine != meta.get('pipeline'):
            raise ValueError(
                f'the dataset pipeline differs from the one the teacher-logit batch cache '
                f'{self.cache.meta_path} was made with.\nCache:\n{meta.get("pipeline")}\n'
                f'Dataset:\n{mine}\n(check_pipeline=False to skip this check)')
        print_log(f'teacher-logit batch cache {cache}: {self.cache.epochs} epochs x '
                  f'{self.cache.num_batches} global batches of {self.cache.global_batch_size} '
                  f'(mixing groups of {meta["mix_group"]}, seed {meta["seed"]}), top-'
                  f'{self.cache.topk} of {self.cache.num_classes} logits, teacher '
                  f'{meta.get("teacher_ckpt")}', logger='current')

    def check_batches(self, seed: int, global_batch_size: int, mix_group: int) -> None:
        """Called by :class:`GlobalBatchSampler` when it is built."""
        self.cache.check_plan('the training run (randomness.seed, GlobalBatchSampler)',
                              seed=seed, global_batch_size=global_batch_size,
                              mix_group=mix_group)

    def check_epoch(self, epoch: int) -> None:
        if not 0 <= epoch < self.cache.epochs:
            raise IndexError(
                f'epoch {epoch} (0-based) is beyond the teacher-logit batch cache '
                f'{self.cache.path}, which holds {self.cache.epochs} epoch(s): make it with '
                '--epochs >= train_cfg.max_epochs')

    def __getitem__(self, slot):
        if not isinstance(slot, BatchSlot):
            raise TypeError(f'BatchTeacherLogitsDataset: got index {slot!r}; it reads global '
                            "batches: batch_sampler=dict(type='GlobalBatchSampler', "
                            f'global_batch_size={self.cache.global_batch_size}, '
                            f'mix_group={self.cache.meta["mix_group"]})')
        data = self._slot_item(slot)
        # checked against the training preprocessor's batch augments at every step
        data['data_samples'].set_metainfo(
            dict(cache_batch_augments=self.cache.meta.get('batch_augments')))
        data['data_samples'].set_field(
            torch.from_numpy(self.cache.logits(slot.epoch, slot.batch, slot.slot)),
            'teacher_logits')
        return data
