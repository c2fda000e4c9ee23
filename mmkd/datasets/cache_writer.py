"""Making a teacher-logit cache: the teacher's pass over every epoch's augmented training set."""
import datetime
import json
import os
import os.path as osp
import shutil
from typing import Callable, Optional

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Sampler

from .teacher_logits import (ARRAYS, FORMAT, META_FILE, SEED_DERIVATION, VERSION, SeededDataset,
                             TeacherLogitsCache, file_sha256, pipeline_repr, sample_seeds)


class _AllEpochs(Sampler):
    """(epoch, index) for every epoch in order, indices in order within each epoch."""

    def __init__(self, epochs: int, num_samples: int):
        self.epochs, self.num_samples = epochs, num_samples

    def __iter__(self):
        for e in range(self.epochs):
            for i in range(self.num_samples):
                yield e, i

    def __len__(self):
        return self.epochs * self.num_samples


def check_online_teacher(distiller) -> None:
    """A cache is made by running the teacher: the distiller must have the online one."""
    if not distiller.teacher_source.runs_teacher:
        raise ValueError('making a teacher-logit cache needs the distiller with the online '
                         'teacher (teacher and teacher_ckpt set, logit_cache=False): pass the '
                         'distillation config the cached config inherits from')


def check_cacheable(distiller) -> None:
    """The distiller can make a cache: it runs an online teacher and its preprocessor does not
    mix samples (mixup/cutmix would make the logits those of mixed images, which training,
    replaying single samples, cannot reproduce)."""
    check_online_teacher(distiller)
    names = distiller.mixing_augments()
    if names:
        raise ValueError(f'the data preprocessor has batch augments {names} (mixup/cutmix): '
                         'they mix the samples of a batch, so cached logits could not be '
                         'replayed per sample. Remove data_preprocessor.batch_augments (in the '
                         'config or with --cfg-options) to make a cache.')


def _prepare_out(out_dir: str) -> str:
    if osp.exists(out_dir) and not osp.isfile(osp.join(out_dir, META_FILE)) \
            and os.listdir(out_dir):
        raise FileExistsError(f'{out_dir} exists and is not a teacher-logit cache: not '
                              'overwriting it')
    tmp = f'{out_dir.rstrip(os.sep)}.tmp-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return tmp


@torch.inference_mode()
def cache_teacher_logits(distiller, dataset, out_dir: str, epochs: int,
                         topk: Optional[int] = None, batch_size: int = 256, base_seed: int = 0,
                         fp16: bool = False, num_workers: int = 0,
                         collate_fn: Callable = pseudo_collate,
                         teacher_ckpt: Optional[str] = None, meta: Optional[dict] = None,
                         progress: bool = True) -> TeacherLogitsCache:
    """Run the distiller's teacher over ``epochs`` seeded augmentations of ``dataset`` and write
    the cache to ``out_dir`` (replaced atomically when complete).

    The teacher is run exactly as ``distiller.loss`` runs it in training:
    ``distiller.data_preprocessor(data, True)`` (no batch augments, hence no randomness), then
    ``distiller.teacher_records`` (teacher in eval mode, its normalisation, autocast and
    channels-last settings), here under ``torch.inference_mode``. Samples are visited in index
    order, epoch after epoch; sample ``i`` of epoch ``e`` is augmented under
    ``seeds[e, i]`` (:func:`~mmkd.datasets.sample_seeds` of ``base_seed``), which the cache
    stores.

    Args:
        distiller: a ``ClassificationDistiller`` with its online teacher.
        dataset (dict | Dataset): the training dataset (config), with its training pipeline.
        topk (int, optional): logits kept per sample; default all (exact).
        fp16 (bool): store the top-k values in float16 (half the disk; not exact).
        teacher_ckpt (str, optional): recorded in the meta with its SHA-256.
        meta (dict, optional): more entries for ``meta.json`` (e.g. the config path).
    """
    check_cacheable(distiller)
    distiller.eval()  # the teacher always is; the preprocessor moves data to its device
    seeded = SeededDataset(dataset, seeds=None)
    num_samples = len(seeded)
    seeds = sample_seeds(base_seed, epochs, num_samples)
    seeded.seeds = seeds
    loader = DataLoader(seeded, batch_size=batch_size, sampler=_AllEpochs(epochs, num_samples),
                        num_workers=num_workers, collate_fn=collate_fn)

    tmp = _prepare_out(out_dir)
    arrays, k, num_classes = None, None, None
    bar = ProgressBar(epochs * num_samples) if progress else None
    pos = 0
    try:
        for data in loader:
            samples = data['data_samples']
            where = [(s.cache_epoch, s.cache_index) for s in samples]
            expected = [divmod(p, num_samples) for p in range(pos, pos + len(samples))]
            assert where == expected, 'the cache loader went out of order'
            data = distiller.data_preprocessor(data, True)
            inputs = distiller.format_inputs(data['inputs'])
            logits = distiller.teacher_records(inputs, data['data_samples'])['logits'].float()
            if arrays is None:
                num_classes = logits.shape[1]
                k = num_classes if topk is None else int(topk)
                if not 1 <= k <= num_classes:
                    raise ValueError(f'topk={topk}: must be in 1..{num_classes} (the teacher '
                                     f'has {num_classes} classes)')
                arrays = _open_arrays(tmp, epochs, num_samples, k, num_classes, fp16)
            values, indices = logits.topk(k, dim=1)
            lse = torch.logsumexp(logits, dim=1)
            rows = slice(pos, pos + len(samples))
            arrays['values'][rows] = values.cpu().numpy()
            arrays['indices'][rows] = indices.cpu().numpy()
            arrays['lse'][rows] = lse.cpu().numpy()
            pos += len(samples)
            if bar is not None:
                bar.update(len(samples))
        if bar is not None:
            print(flush=True)
        assert pos == epochs * num_samples
        for arr in arrays.pop('_memmaps'):
            arr.flush()
        del arrays
        np.save(osp.join(tmp, ARRAYS['seeds'][0]), seeds)
        record = dict(
            format=FORMAT, version=VERSION, num_samples=num_samples, dataset_length=num_samples,
            num_classes=num_classes, topk=k, epochs=epochs, base_seed=int(base_seed),
            seed_derivation=SEED_DERIVATION, values_dtype='float16' if fp16 else 'float32',
            indices_dtype=str(np.dtype(index_dtype(num_classes))), lse_dtype='float32',
            teacher_ckpt=teacher_ckpt,
            teacher_ckpt_sha256=file_sha256(teacher_ckpt) if teacher_ckpt else None,
            dataset=type(seeded.dataset).__name__, pipeline=pipeline_repr(seeded.dataset),
            files={name: file for name, (file, _) in ARRAYS.items()},
            created=datetime.datetime.now().isoformat(timespec='seconds'),
            **(meta or {}))
        with open(osp.join(tmp, META_FILE), 'w') as f:
            json.dump(record, f, indent=2)
        if osp.exists(out_dir):
            shutil.rmtree(out_dir)
        os.makedirs(osp.dirname(osp.abspath(out_dir)), exist_ok=True)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TeacherLogitsCache(out_dir)


def index_dtype(num_classes: int):
    return np.int16 if num_classes <= np.iinfo(np.int16).max + 1 else np.int32


def _open_arrays(tmp, epochs, num_samples, k, num_classes, fp16) -> dict:
    """Arrays written in place on disk (no (E, N, k) array in memory), viewed as (E*N, ...)."""
    shapes = dict(values=((epochs, num_samples, k), np.float16 if fp16 else np.float32),
                  indices=((epochs, num_samples, k), index_dtype(num_classes)),
                  lse=((epochs, num_samples), np.float32))
    arrays = dict(_memmaps=[])
    for name, (shape, dtype) in shapes.items():
        arr = np.lib.format.open_memmap(osp.join(tmp, ARRAYS[name][0]), mode='w+', dtype=dtype,
                                        shape=shape)
        arrays['_memmaps'].append(arr)
        arrays[name] = arr.reshape((epochs * num_samples, ) + shape[2:])
    return arrays
