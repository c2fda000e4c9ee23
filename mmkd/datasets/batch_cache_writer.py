"""Making and checking a teacher-logit batch cache (:mod:`mmkd.datasets.batch_logits`): every
process of a job writes its share of the global batches to its own append-only file; a writer
that stopped continues where its log ends; rank 0 writes the index when all are there."""
import datetime
import glob
import json
import os
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader

from .batch_logits import (FORMAT, INDEX_FILE, META_FILE, PLAN_FILE, VERSION, BatchLogitsCache,
                           read_log, record_dtype, writer_files)
from .cache_writer import check_online_teacher, index_dtype
from .global_batch_sampler import epoch_order, global_batch
from .teacher_logits import SeededDataset, _build_dataset, file_sha256, pipeline_repr


def check_batch_cacheable(distiller) -> None:
    """The distiller runs an online teacher, and its batch augments (if any) draw from the
    samples' seeds (``SeededClsDataPreprocessor``): otherwise the cached mixed images could not
    be replayed in training."""
    from mmkd.models.seeded_data_preprocessor import SeededClsDataPreprocessor
    check_online_teacher(distiller)
    names = distiller.mixing_augments()
    if names and not isinstance(distiller.data_preprocessor, SeededClsDataPreprocessor):
        raise ValueError(f'the data preprocessor {type(distiller.data_preprocessor).__name__} '
                         f'mixes samples ({names}) with the global random state, so the mixed '
                         "images could not be replayed: use data_preprocessor=dict(type="
                         "'SeededClsDataPreprocessor', ...) (same arguments)")


def _seeded(dataset) -> SeededDataset:
    """The training dataset (config) as a SeededDataset, whether or not the config wraps it."""
    dataset = _build_dataset(dataset)
    return dataset if isinstance(dataset, SeededDataset) else SeededDataset(dataset)


def _teacher_logits(distiller, data) -> torch.Tensor:
    data = distiller.data_preprocessor(data, True)  # training: the seeded batch augments mix
    inputs = distiller.format_inputs(data['inputs'])
    return distiller.teacher_records(inputs, data['data_samples'])['logits'].float()


def _chunked_loader(dataset, slots, batch_size, num_workers, collate_fn) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=slots, num_workers=num_workers,
                      collate_fn=collate_fn)


def _check_chunk(batch_size: int, global_batch_size: int, mix_group: int) -> int:
    batch_size = batch_size or global_batch_size
    if global_batch_size % batch_size or batch_size % mix_group:
        raise ValueError(f'batch_size={batch_size}: the teacher runs on whole mixing groups '
                         f'({mix_group}) of whole global batches ({global_batch_size}); give a '
                         'multiple of mix_group that divides global_batch_size')
    return batch_size


def _num_classes(distiller, seeded, collate_fn) -> int:
    """The teacher's number of classes, from one unmixed sample."""
    data = distiller.data_preprocessor(collate_fn([seeded.dataset[0]]), False)
    return int(distiller.teacher_records(distiller.format_inputs(data['inputs']),
                                         data['data_samples'])['logits'].shape[1])


def _plan(seeded, epochs, seed, global_batch_size, mix_group, topk, fp16, distiller,
          num_classes) -> dict:
    k = num_classes if topk is None else int(topk)
    if not 1 <= k <= num_classes:
        raise ValueError(f'topk={topk}: must be in 1..{num_classes} (the teacher has '
                         f'{num_classes} classes)')
    n = len(seeded)
    if n < global_batch_size:
        raise ValueError(f'the dataset has {n} samples, fewer than one global batch '
                         f'({global_batch_size})')
    if global_batch_size % mix_group:
        raise ValueError(f'mix_group={mix_group} must divide global_batch_size='
                         f'{global_batch_size}')
    describe = getattr(distiller.data_preprocessor, 'augments_repr', None)
    return dict(format=FORMAT, version=VERSION, seed=int(seed),
                global_batch_size=int(global_batch_size), mix_group=int(mix_group),
                num_samples=n, epochs=int(epochs), num_batches=n // global_batch_size,
                num_classes=num_classes, topk=k, values_dtype='float16' if fp16 else 'float32',
                indices_dtype=str(np.dtype(index_dtype(num_classes))),
                dataset=type(seeded.dataset).__name__, pipeline=pipeline_repr(seeded.dataset),
                batch_augments=describe() if describe else None)


def _write_json(path: str, obj: dict) -> None:
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _agree_on_plan(out_dir: str, plan: dict, rank: int, barrier: Callable) -> None:
    path = osp.join(out_dir, PLAN_FILE)
    if rank == 0:
        if osp.isdir(out_dir) and os.listdir(out_dir) and not osp.isfile(path):
            raise FileExistsError(f'{out_dir} exists and is not a teacher-logit batch cache: '
                                  'not writing into it')
        os.makedirs(out_dir, exist_ok=True)
        if not osp.isfile(path):
            _write_json(path, plan)
    barrier()
    with open(path) as f:
        theirs = json.load(f)
    diff = [f'{k}: {plan.get(k)!r} now vs {theirs.get(k)!r} in {path}'
            for k in sorted(set(plan) | set(theirs)) if plan.get(k) != theirs.get(k)]
    if diff:
        raise ValueError(f'{out_dir} holds a cache being made for other batches, so it cannot '
                         'be continued: ' + '; '.join(diff) + '. Give another --out, or '
                         'delete it')


def _done_batches(out_dir: str) -> Dict[Tuple[int, int], Tuple[int, int]]:
    """``(epoch, batch) -> (writer, row)`` over every writer's log."""
    done = {}
    for log in glob.glob(osp.join(out_dir, 'writer-*.log')):
        writer = int(re.search(r'writer-(\d+)\.log$', log).group(1))
        for epoch, batch, row in read_log(log):
            done.setdefault((epoch, batch), (writer, row))
    return done


class _Slots:
    """The slots of the global batches ``batches`` in order, generated as they are read."""

    def __init__(self, batches: Sequence[Tuple[int, int]], plan: dict):
        self.batches, self.plan = batches, plan

    def __iter__(self):
        p, order = self.plan, (None, None)
        for e, b in self.batches:
            if order[0] != e:
                order = e, epoch_order(p['seed'], e, p['num_samples'])
            yield from global_batch(p['seed'], e, b, p['global_batch_size'], p['mix_group'],
                                    p['num_samples'], order[1])

    def __len__(self):
        return len(self.batches) * self.plan['global_batch_size']


class _Writer:
    """Appends one global batch of records at a time to ``writer-<rank>.bin`` and, once they
    are on disk, its line to ``writer-<rank>.log``. Opening it cuts off what a crash left half
    written: records past the log's last line, a torn last line."""

    def __init__(self, out_dir: str, rank: int):
        self.bin, self.log = writer_files(out_dir, rank)
        lines = read_log(self.log)
        if [row for *_, row in lines] != list(range(len(lines))):
            raise ValueError(f'{self.log}: rows are not 0..{len(lines) - 1} in order; the cache '
                             'directory was changed by hand: delete it and start again')
        self.rows = len(lines)
        with open(self.log, 'w') as f:
            f.writelines(f'{e} {b} {r}\n' for e, b, r in lines)
        self.file = None

    def write(self, epoch: int, batch: int, records: np.ndarray) -> None:
        if self.file is None:
            keep = self.rows * records.nbytes
            self.file = open(self.bin, 'r+b' if osp.isfile(self.bin) else 'wb')
            self.file.truncate(keep)
            self.file.seek(keep)
        self.file.write(records.tobytes())
        self.file.flush()
        os.fsync(self.file.fileno())
        with open(self.log, 'a') as f:
            f.write(f'{epoch} {batch} {self.rows}\n')
            f.flush()
            os.fsync(f.fileno())
        self.rows += 1

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def write_batch_cache(distiller, dataset, out_dir: str, *, epochs: int, seed: int,
                      global_batch_size: int, mix_group: int, topk: Optional[int] = None,
                      fp16: bool = False, batch_size: Optional[int] = None,
                      num_workers: int = 0, collate_fn: Callable = pseudo_collate,
                      rank: int = 0, world_size: int = 1, barrier: Callable = lambda: None,
                      teacher_ckpt: Optional[str] = None, meta: Optional[dict] = None,
                      max_batches: Optional[int] = None,
                      progress: bool = True) -> Optional[BatchLogitsCache]:
    """Run the teacher over every global batch of ``epochs`` epochs, mixed as training mixes
    them, and store its top-k logits per slot. Call it in every process of a job (``rank`` of
    ``world_size``, ``barrier`` their barrier): each takes every ``world_size``-th batch not yet
    written. ``max_batches``: stop after writing that many (the next call continues).

    Returns the cache once complete (in every process), ``None`` if stopped early.
    """
    check_batch_cacheable(distiller)
    distiller.eval()
    batch_size = _check_chunk(batch_size, global_batch_size, mix_group)
    seeded = _seeded(dataset)
    with torch.no_grad():
        num_classes = _num_classes(distiller, seeded, collate_fn)
    plan = _plan(seeded, epochs, seed, global_batch_size, mix_group, topk, fp16, distiller,
                 num_classes)
    _agree_on_plan(out_dir, plan, rank, barrier)
    if osp.isfile(osp.join(out_dir, META_FILE)):
        return BatchLogitsCache(out_dir)
    done = _done_batches(out_dir)
    barrier()  # every process has read the logs before any writes: the same shares for all
    pending = [(e, b) for e in range(epochs) for b in range(plan['num_batches'])
               if (e, b) not in done]
    mine = pending[rank::world_size][:max_batches]
    writer = _Writer(out_dir, rank)
    loader = _chunked_loader(seeded, _Slots(mine, plan), batch_size, num_workers, collate_fn)
    bar = ProgressBar(len(mine)) if progress and rank == 0 and mine else None
    dtype = record_dtype(plan['topk'], plan['values_dtype'], plan['indices_dtype'])
    parts = []
    try:
        for data in loader:
            logits = _teacher_logits(distiller, data)
            values, indices = logits.topk(plan['topk'], dim=1)
            rec = np.empty(len(logits), dtype=dtype)
            rec['values'] = values.cpu().numpy()
            rec['indices'] = indices.cpu().numpy()
            rec['lse'] = torch.logsumexp(logits, dim=1).cpu().numpy()
            parts.append(rec)
            if sum(len(p) for p in parts) == global_batch_size:
                epoch, batch, _ = data['data_samples'][-1].batch_slot
                writer.write(epoch, batch, np.concatenate(parts))
                parts = []
                if bar is not None:
                    bar.update()
    finally:
        writer.close()
    if bar is not None:
        print(flush=True)
    if max_batches is not None and len(pending[0::world_size]) > max_batches:
        return None  # rank 0 has the largest share: someone stopped early
    barrier()
    if rank == 0:
        _finish(out_dir, plan, teacher_ckpt, meta)
    barrier()
    return BatchLogitsCache(out_dir)


def _finish(out_dir, plan, teacher_ckpt, meta) -> None:
    done = _done_batches(out_dir)
    index = np.full((plan['epochs'], plan['num_batches'], 2), -1, dtype=np.int64)
    for (e, b), (writer, row) in done.items():
        index[e, b] = writer, row
    missing = int((index[..., 0] < 0).sum())
    if missing:
        raise RuntimeError(f'{out_dir}: {missing} global batches are in no writer\'s log after '
                           'every writer finished; run the command again to write them')
    np.save(osp.join(out_dir, INDEX_FILE), index)
    record = dict(plan, lse_dtype='float32',
                  teacher_ckpt=teacher_ckpt,
                  teacher_ckpt_sha256=file_sha256(teacher_ckpt) if teacher_ckpt else None,
                  created=datetime.datetime.now().isoformat(timespec='seconds'),
                  **(meta or {}))
    _write_json(osp.join(out_dir, META_FILE), record)


def verify_batch_cache(distiller, dataset, cache: BatchLogitsCache, num_batches: int = 4,
                       batch_size: Optional[int] = None, num_workers: int = 0,
                       collate_fn: Callable = pseudo_collate,
                       choice_seed: int = 0) -> dict:
    """Re-run the teacher on ``num_batches`` random cached global batches and compare: the
    largest difference of the stored top-k logits from the recomputed ones at the same classes,
    and of the log-sum-exp. Returns ``dict(batches=[(epoch, batch)], max_abs_logit=..,
    max_abs_lse=..)``."""
    meta = cache.meta
    g, m = meta['global_batch_size'], meta['mix_group']
    batch_size = _check_chunk(batch_size, g, m)
    seeded = _seeded(dataset)
    cache.check_plan('the config\'s dataset', num_samples=len(seeded))
    rng = np.random.default_rng(choice_seed)
    total = cache.epochs * cache.num_batches
    picks = sorted(rng.choice(total, size=min(num_batches, total), replace=False).tolist())
    chosen = [divmod(p, cache.num_batches) for p in picks]
    slots: List = []
    for e, b in chosen:
        slots += global_batch(meta['seed'], e, b, g, m, meta['num_samples'])
    loader = _chunked_loader(seeded, slots, batch_size, num_workers, collate_fn)
    worst_logit = worst_lse = 0.0
    distiller.eval()
    for data in loader:
        logits = _teacher_logits(distiller, data)
        lse = torch.logsumexp(logits, dim=1).cpu().numpy()  # as the writer computes it
        recs = np.stack([cache.slots(e, b)[s]
                         for e, b, s in (x.batch_slot for x in data['data_samples'])])
        got = np.take_along_axis(logits.cpu().numpy(), recs['indices'].astype(np.int64), 1)
        worst_logit = max(worst_logit, float(np.abs(got - recs['values']).max()))
        worst_lse = max(worst_lse, float(np.abs(lse - recs['lse']).max()))
    return dict(batches=chosen, max_abs_logit=worst_logit, max_abs_lse=worst_lse)
