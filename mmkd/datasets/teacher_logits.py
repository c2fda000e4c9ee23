"""Teacher-logit cache (as in TinyViT): the teacher runs once per epoch, ahead of training.

A tool (``tools/cache_teacher_logits.py``, :func:`~mmkd.datasets.cache_teacher_logits`) runs the
teacher over the training set for every epoch, each sample augmented under its own seed, and
stores the top-k logits and the seed. :class:`TeacherLogitsDataset` replays each sample's
augmentation from the stored seed and hands the logits to the distiller
(``ClassificationDistiller(logit_cache=True)``), which then never runs the teacher.

See ``docs/teacher_cache.md`` for the file format and what the top-k approximation changes.
"""
import contextlib
import hashlib
import json
import os
import os.path as osp
import random
import re
from typing import Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from mmkd.registry import DATASETS

from .global_batch_sampler import BatchSlot

FORMAT = 'mmkd-teacher-logits'
VERSION = 1
META_FILE = 'meta.json'
#: array name -> (file, dims); E epochs, N samples, k stored logits per sample
ARRAYS = dict(seeds=('seeds.npy', 'EN'), values=('values.npy', 'ENk'),
              indices=('indices.npy', 'ENk'), lse=('lse.npy', 'EN'))
#: when the mass outside the top-k is not resolvable (<= 0 after rounding), the other logits
#: are set this far below the k-th largest: at temperature T their weight relative to the k-th
#: class is exp(-UNDERFLOW_GAP / T) (2e-22 at T=1, 4e-6 at T=4), i.e. the rest is treated as empty
UNDERFLOW_GAP = 50.0
SEED_DERIVATION = ('seeds[e] = numpy.random.SeedSequence(base_seed, spawn_key=(e,))'
                   '.generate_state(N, numpy.uint64) >> 1  (as int64)')


# -- seeds and seeded augmentation ----------------------------------------------------------
def sample_seeds(base_seed: int, epochs: int, num_samples: int) -> np.ndarray:
    """The (epochs, num_samples) int64 seeds of every (epoch, index), 63-bit, derived from
    ``base_seed`` with numpy's SeedSequence (independent streams per epoch). The cache stores
    them; training reads them from the cache and never recomputes them."""
    seeds = np.empty((epochs, num_samples), dtype=np.int64)
    for e in range(epochs):
        seeds[e] = epoch_seeds(base_seed, e, num_samples)
    return seeds


def epoch_seeds(base_seed: int, epoch: int, num_samples: int) -> np.ndarray:
    """Row ``epoch`` of :func:`sample_seeds`: (num_samples, ) int64."""
    state = np.random.SeedSequence(int(base_seed), spawn_key=(int(epoch), )).generate_state(
        num_samples, dtype=np.uint64)
    return (state >> np.uint64(1)).astype(np.int64)


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, ``numpy.random`` and torch's generators (CPU, and every CUDA
    device when there is one) from one 63-bit ``seed``."""
    _seed_cpu(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def _seed_cpu(seed: int) -> None:
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF])
    torch.default_generator.manual_seed(seed)


@contextlib.contextmanager
def seeded_rng(seed: int):
    """Run the body with Python's ``random``, ``numpy.random`` and torch's CPU generator all
    seeded from ``seed``, then restore their states: the rest of the program (e.g. a worker's
    own random stream) is untouched. CUDA generators are neither seeded nor touched."""
    seed = int(seed)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        _seed_cpu(seed)
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _epoch_index(idx) -> Tuple[int, int]:
    if isinstance(idx, (tuple, list)) and len(idx) == 2:
        return int(idx[0]), int(idx[1])
    raise TypeError(
        f'got index {idx!r}: this dataset replays the augmentation of a given epoch and needs '
        "(epoch, index) pairs; wrap the training sampler: sampler=dict(type='EpochIndexSampler', "
        "sampler=dict(type='DefaultSampler', shuffle=True))")


def _build_dataset(dataset):
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


def pipeline_repr(dataset) -> Optional[str]:
    """The dataset's pipeline as text, without object addresses (for the cache's record)."""
    pipeline = getattr(dataset, 'pipeline', None)
    return None if pipeline is None else re.sub(r' at 0x[0-9a-fA-F]+', '', repr(pipeline))


@DATASETS.register_module()
class SeededDataset:
    """``dataset[(epoch, index)]``: ``dataset[index]`` with its pipeline run under its own seed
    (:func:`seeded_rng`), so that a sample's augmentation depends on (seed, epoch, index) only:
    not on the worker that loads it, the number of workers, persistent workers or a resume.
    Iterate it with :class:`~mmkd.datasets.EpochIndexSampler`, or with
    :class:`~mmkd.datasets.GlobalBatchSampler`, whose items bring their own seeds (then
    neither ``seeds`` nor ``seed`` is needed).

    The cache tool iterates it with stored ``seeds``; training with reproducible resume
    (:class:`~mmkd.engine.ReproducibleResumeHook`) gives the run's ``seed`` and the seeds are
    derived as the cache derives them (:func:`sample_seeds`).

    Args:
        dataset (dict | Dataset): the dataset (config) whose pipeline draws the augmentation.
        seeds (array, optional): (E, N) int64, the seed of every (epoch, index).
        seed (int, optional): the base seed the seeds are derived from, epoch by epoch, instead.
    """

    def __init__(self, dataset, seeds: Optional[np.ndarray] = None, seed: Optional[int] = None):
        if seeds is not None and seed is not None:
            raise ValueError('SeededDataset: give seeds (stored) or seed (derived), not both')
        self.dataset = _build_dataset(dataset)
        self.seeds = seeds
        self.seed = seed
        self._epoch_row: Tuple[int, Optional[np.ndarray]] = (-1, None)

    @property
    def metainfo(self) -> dict:
        return getattr(self.dataset, 'metainfo', {})

    def full_init(self) -> None:
        """Built eagerly: the length is needed (and checked) when it is created."""

    def __len__(self) -> int:
        return len(self.dataset)

    def _seed(self, epoch: int, index: int) -> int:
        if self.seeds is not None:
            return int(self.seeds[epoch, index])
        if self.seed is None:
            raise RuntimeError('SeededDataset has neither seeds nor a seed, and the index '
                               f'({epoch}, {index}) brings none: give seeds= or seed=, or '
                               "sample with batch_sampler=dict(type='GlobalBatchSampler', ...)")
        if self._epoch_row[0] != epoch:  # one row per epoch: N seeds in about a millisecond
            self._epoch_row = (epoch, epoch_seeds(self.seed, epoch, len(self)))
        return int(self._epoch_row[1][index])

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for a dataset of {len(self)} samples')

    def __getitem__(self, idx):
        if isinstance(idx, BatchSlot):
            return self._slot_item(idx)
        epoch, index = _epoch_index(idx)
        self._check_index(index)
        with seeded_rng(self._seed(epoch, index)):
            data = self.dataset[index]
        data['data_samples'].set_metainfo(dict(cache_epoch=epoch, cache_index=index))
        return data

    def _slot_item(self, slot: BatchSlot):
        """A :class:`~mmkd.datasets.GlobalBatchSampler` item: the sample under the slot's
        seed; the slot and its mixing group's seed go to the data sample's metainfo (read by
        :class:`~mmkd.models.SeededClsDataPreprocessor`)."""
        self._check_index(slot.index)
        with seeded_rng(slot.seed):
            data = self.dataset[slot.index]
        data['data_samples'].set_metainfo(dict(batch_slot=(slot.epoch, slot.batch, slot.slot),
                                               mix_seed=slot.mix_seed))
        return data


# -- top-k reconstruction -------------------------------------------------------------------
def reconstruct_logits(values, indices, lse, num_classes: int) -> np.ndarray:
    """Full (..., K) float32 logits from the stored top-k ``values``/``indices`` (..., k) and
    the log-sum-exp ``lse`` (...) of the full logit vector.

    The top-k logits come back exactly. The other K-k get one value c, chosen so that at
    temperature 1 they share exactly the remaining softmax mass:
    ``(K-k) exp(c) = exp(lse) - sum(exp(topk))``, computed relative to ``exp(lse)`` in float64
    (no overflow): ``c = lse + log(1 - sum(exp(topk - lse))) - log(K-k)``, then clipped to at
    most the k-th logit (rounding must not lift the rest above the top-k). When that remaining
    mass is not resolvable (<= 0 after rounding: a very confident teacher, or float16 values),
    ``c = k-th logit - UNDERFLOW_GAP`` (50): the rest is treated as empty.

    With k = K the logits are exact. With k < K this is an approximation: exact at T=1 for the
    top-k probabilities and for the total probability of the rest (up to float32 rounding), but
    the rest's individual probabilities are flattened, so losses at other temperatures, and the
    non-target part of DKD/NKD (the distribution among the non-target classes), differ from
    the online teacher's.
    """
    values = np.asarray(values)
    indices = np.asarray(indices).astype(np.int64)
    k = values.shape[-1]
    out = np.empty(values.shape[:-1] + (num_classes, ), dtype=np.float32)
    if k < num_classes:
        v64 = values.astype(np.float64)
        lse64 = np.asarray(lse, dtype=np.float64)
        rest = 1.0 - np.exp(v64 - lse64[..., None]).sum(-1)
        kth = v64.min(-1)
        with np.errstate(divide='ignore', invalid='ignore'):
            c = lse64 + np.log(rest) - np.log(num_classes - k)
        c = np.where(rest > 0, np.minimum(c, kth), kth - UNDERFLOW_GAP)
        out[...] = c[..., None]
    np.put_along_axis(out, indices, values.astype(np.float32), axis=-1)
    return out


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


# -- reading a cache ------------------------------------------------------------------------
class TeacherLogitsCache:
    """A cache directory: ``meta.json`` and the arrays ``seeds`` (E, N) int64, ``values``
    (E, N, k) float32/float16, ``indices`` (E, N, k) int16/int32, ``lse`` (E, N) float32, read
    with ``np.load(mmap_mode='r')``: only the rows used are read from disk, and the page cache
    is shared between dataloader workers. The arrays are opened lazily, once per process, and
    are not pickled (spawned workers reopen them)."""

    def __init__(self, path: str):
        self.path = path
        self.meta_path = osp.join(path, META_FILE)
        if not osp.isfile(self.meta_path):
            raise FileNotFoundError(
                f'no teacher-logit cache at {path} ({META_FILE} missing): make it with '
                'tools/cache_teacher_logits.py <the distillation config with the online teacher>')
        with open(self.meta_path) as f:
            self.meta = json.load(f)
        if self.meta.get('format') != FORMAT or self.meta.get('version') != VERSION:
            raise ValueError(f'{self.meta_path}: not a {FORMAT} v{VERSION} cache '
                             f"(format={self.meta.get('format')!r}, "
                             f"version={self.meta.get('version')!r})")
        self._arrays = None
        self._pid = None
        self.arrays()  # shapes checked now

    num_samples = property(lambda self: int(self.meta['num_samples']))
    num_classes = property(lambda self: int(self.meta['num_classes']))
    topk = property(lambda self: int(self.meta['topk']))
    epochs = property(lambda self: int(self.meta['epochs']))

    def arrays(self) -> dict:
        if self._arrays is None or self._pid != os.getpid():
            dims = dict(E=self.epochs, N=self.num_samples, k=self.topk)
            arrays = {}
            for name, (file, shape) in ARRAYS.items():
                fpath = osp.join(self.path, file)
                if not osp.isfile(fpath):
                    raise FileNotFoundError(f'teacher-logit cache {self.path}: {file} missing')
                arr = np.load(fpath, mmap_mode='r')
                expected = tuple(dims[d] for d in shape)
                if arr.shape != expected:
                    raise ValueError(f'{fpath} has shape {arr.shape}, but {self.meta_path} says '
                                     f'{expected} ({shape})')
                arrays[name] = arr
            self._arrays, self._pid = arrays, os.getpid()
        return self._arrays

    def __getstate__(self):
        return {**self.__dict__, '_arrays': None, '_pid': None}

    def seed(self, epoch: int, index: int) -> int:
        return int(self.arrays()['seeds'][epoch, index])

    def logits(self, epoch: int, index: int) -> np.ndarray:
        """The (K,) float32 logits of sample ``index`` in epoch ``epoch`` (see
        :func:`reconstruct_logits`)."""
        a = self.arrays()
        return reconstruct_logits(a['values'][epoch, index], a['indices'][epoch, index],
                                  a['lse'][epoch, index], self.num_classes)

    def check(self, num_samples: int, num_classes: Optional[int] = None,
              what: str = 'the dataset') -> None:
        if num_samples != self.num_samples:
            raise ValueError(f'teacher-logit cache {self.meta_path} holds {self.num_samples} '
                             f'samples, but {what} has {num_samples}: the cache belongs to '
                             'another dataset (or another indices=/subset); remake it')
        if num_classes is not None and num_classes != self.num_classes:
            raise ValueError(f'teacher-logit cache {self.meta_path} holds logits of '
                             f'{self.num_classes} classes, but {what} has {num_classes}')

    def nbytes(self) -> int:
        return sum(osp.getsize(osp.join(self.path, f)) for f in os.listdir(self.path))


# -- the training dataset -------------------------------------------------------------------
@DATASETS.register_module()
class TeacherLogitsDataset(SeededDataset):
    """Training data with the teacher's cached logits (``teacher_logits``, float32 (K,), a
    data field of each data sample) for ``ClassificationDistiller(logit_cache=True)``.

    ``dataset[(epoch, index)]`` reads the seed that the cache stored for (epoch, index), runs
    the wrapped dataset's pipeline under it (Python ``random``, ``numpy.random`` and torch's CPU
    generator seeded, their states restored afterwards), so the augmented image is bit-identical
    to the one the teacher saw when the cache was made, and adds the cached logits. The epoch
    comes from :class:`~mmkd.datasets.EpochIndexSampler`; a plain int index is an error.

    With ``topk < K`` the logits are an approximation (see :func:`reconstruct_logits`); with
    ``topk == K`` (and float32 values) they are exactly the teacher's.

    Args:
        dataset (dict | Dataset): the training dataset, with the *same* pipeline as when the
            cache was made (checked against the cache's record unless ``check_pipeline=False``).
        cache (str): the cache directory.
        cycle_epochs (bool): for epochs beyond the cached ones, reuse them cyclically (epoch
            ``e`` reads cached epoch ``e % E``) instead of raising an error.
        num_classes (int, optional): the model's number of classes, checked against the cache;
            default: the number of ``classes`` of the dataset's metainfo, when it has them.
        teacher_ckpt (str, optional): check that the cache was made with this checkpoint
            (SHA-256 of the file); default: not checked (the cache's teacher is logged).
        check_pipeline (bool): error if the pipeline differs from the one the cache recorded.
    """

    def __init__(self, dataset, cache: str, cycle_epochs: bool = False,
                 num_classes: Optional[int] = None, teacher_ckpt: Optional[str] = None,
                 check_pipeline: bool = True):
        self.cache = TeacherLogitsCache(cache)
        super().__init__(dataset, seeds=None)
        self.cycle_epochs = bool(cycle_epochs)
        meta = self.cache.meta
        if num_classes is None and 'classes' in self.metainfo:
            num_classes = len(self.metainfo['classes'])
        self.cache.check(len(self.dataset), num_classes)
        if check_pipeline and meta.get('pipeline') is not None:
            mine = pipeline_repr(self.dataset)
            if mine is not None and mine != meta['pipeline']:
                raise ValueError(
                    f'the dataset pipeline differs from the one the teacher-logit cache '
                    f'{self.cache.meta_path} was made with, so the replayed augmentations '
                    f'would not be the images the logits belong to.\nCache:\n{meta["pipeline"]}'
                    f'\nDataset:\n{mine}\n(check_pipeline=False to skip this check)')
        if teacher_ckpt is not None:
            from mmkd.models.builder import resolve_checkpoint
            digest = file_sha256(resolve_checkpoint(teacher_ckpt, 'teacher'))  # a URL: its cache
            if digest != meta.get('teacher_ckpt_sha256'):
                raise ValueError(f'teacher-logit cache {self.cache.meta_path} was made with '
                                 f"{meta.get('teacher_ckpt')} (sha256 "
                                 f"{meta.get('teacher_ckpt_sha256')}), not with {teacher_ckpt} "
                                 f'(sha256 {digest})')
        print_log(f'teacher-logit cache {cache}: {self.cache.epochs} epochs x '
                  f'{self.cache.num_samples} samples, top-{self.cache.topk} of '
                  f'{self.cache.num_classes} logits ({meta.get("values_dtype")}), teacher '
                  f'{meta.get("teacher_ckpt")} (sha256 '
                  f'{str(meta.get("teacher_ckpt_sha256"))[:12]}), base seed '
                  f'{meta.get("base_seed")}', logger='current')

    def check_epoch(self, epoch: int) -> int:
        """The cached epoch that ``epoch`` reads; an error beyond the cache unless cycling."""
        if 0 <= epoch < self.cache.epochs:
            return epoch
        if self.cycle_epochs and epoch >= 0:
            return epoch % self.cache.epochs
        raise IndexError(
            f'epoch {epoch} (0-based) is beyond the teacher-logit cache {self.cache.path}, which '
            f'holds {self.cache.epochs} epoch(s) (0..{self.cache.epochs - 1}): make a cache with '
            '--epochs >= train_cfg.max_epochs, or set cycle_epochs=True in the '
            'TeacherLogitsDataset to reuse the cached epochs cyclically')

    def _seed(self, epoch: int, index: int) -> int:
        return self.cache.seed(epoch, index)

    def __getitem__(self, idx):
        epoch, index = _epoch_index(idx)
        cached = self.check_epoch(epoch)
        data = super().__getitem__((cached, index))
        data['data_samples'].set_field(torch.from_numpy(self.cache.logits(cached, index)),
                                       'teacher_logits')
        data['data_samples'].set_metainfo(dict(cache_epoch=cached, train_epoch=epoch))
        return data
