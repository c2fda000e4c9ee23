"""Batches and batch-augment draws as a pure function of (seed, epoch, global batch index), so
that a cache can store the teacher's logits of *mixed* images (mixup, cutmix) and training can
replay them, with any number of processes and workers, also after a resume."""
from typing import Iterator, List, NamedTuple, Optional

import numpy as np
from torch.utils.data import BatchSampler, Sampler

from mmkd.registry import DATA_SAMPLERS

from .samplers import runner_sampler_info


class BatchSlot(NamedTuple):
    """One item of a :class:`GlobalBatchSampler` batch: sample ``index`` at position ``slot``
    of global batch ``batch`` of ``epoch``. ``seed`` seeds the sample's pipeline (its own
    augmentation), ``mix_seed`` the batch augment of its mixing group (the same for the
    ``mix_group`` consecutive slots ``slot // mix_group``)."""
    epoch: int
    batch: int
    slot: int
    index: int
    seed: int
    mix_seed: int


def epoch_order(seed: int, epoch: int, num_samples: int) -> np.ndarray:
    """The (num_samples, ) permutation the global batches of ``epoch`` are cut from."""
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0, int(epoch))))
    return rng.permutation(num_samples)


def batch_seeds(seed: int, epoch: int, batch: int, global_batch_size: int, mix_group: int):
    """The 63-bit seeds of global batch ``batch`` of ``epoch``: ``(sample seeds (G, ), mix
    seeds (G // mix_group, ))``, int64."""
    groups = global_batch_size // mix_group
    state = np.random.SeedSequence(int(seed), spawn_key=(1, int(epoch), int(batch))) \
        .generate_state(global_batch_size + groups, dtype=np.uint64)
    state = (state >> np.uint64(1)).astype(np.int64)
    return state[:global_batch_size], state[global_batch_size:]


def global_batch(seed: int, epoch: int, batch: int, global_batch_size: int, mix_group: int,
                 num_samples: int, order: Optional[np.ndarray] = None) -> List[BatchSlot]:
    """Every slot of global batch ``batch`` of ``epoch`` (``order``: that epoch's
    :func:`epoch_order`, if already computed)."""
    if order is None:
        order = epoch_order(seed, epoch, num_samples)
    indices = order[batch * global_batch_size:(batch + 1) * global_batch_size]
    seeds, mix_seeds = batch_seeds(seed, epoch, batch, global_batch_size, mix_group)
    return [BatchSlot(int(epoch), int(batch), s, int(i), int(seeds[s]),
                      int(mix_seeds[s // mix_group])) for s, i in enumerate(indices)]


def samples_global_batches(loader_cfg) -> bool:
    """Whether a dataloader config's batches come from :class:`GlobalBatchSampler`."""
    kind = (loader_cfg.get('batch_sampler') or {}).get('type')
    return kind in ('GlobalBatchSampler', 'mmkd.GlobalBatchSampler', GlobalBatchSampler)


@DATA_SAMPLERS.register_module()
class GlobalBatchSampler(BatchSampler):
    """Global batches of ``global_batch_size`` samples cut from a seeded permutation of the
    dataset per epoch; each of ``world_size`` processes takes its contiguous share of every
    global batch (``global_batch_size // world_size`` slots). Items are :class:`BatchSlot`:
    the sample, its augmentation seed and its mixing group's seed, all a function of
    ``(seed, epoch, batch, slot)`` alone. :class:`~mmkd.datasets.SeededDataset` runs each
    sample's pipeline under its seed and :class:`~mmkd.models.SeededClsDataPreprocessor` runs
    the batch augments (mixup, cutmix, which of them) on each group of ``mix_group`` samples
    under the group's seed: the mixed images are the same in 1 or N processes, with any number
    of workers, and after a resume (:meth:`skip`).

    ``mix_group`` is the batch that mixup mixes within; set it to the per-GPU batch of the
    recipe (64 for DeiT's 8xb64) to keep the recipe's mixing, whatever the number of processes.

    Args:
        sampler (Sampler): given by MMEngine's runner (``DefaultSampler``): its ``seed`` (the
            run's ``randomness.seed``), ``epoch`` (``DistSamplerSeedHook``), ``rank``,
            ``world_size`` and dataset are used, its order is not.
        batch_size (int): given by the runner: the dataloader's ``batch_size``, which must be
            ``global_batch_size // world_size`` (checked).
        global_batch_size (int): samples per global batch, every process together.
        mix_group (int): samples mixed together; divides every process's share.
    """

    def __init__(self, sampler: Sampler, batch_size: int, global_batch_size: int,
                 mix_group: int, drop_last: bool = True):
        self.rank, self.world_size = runner_sampler_info('GlobalBatchSampler', sampler)
        if sampler.seed is None:
            raise ValueError('GlobalBatchSampler: the run has no seed; set randomness.seed')
        if global_batch_size % self.world_size or \
                global_batch_size // self.world_size != batch_size:
            raise ValueError(
                f'GlobalBatchSampler: global_batch_size={global_batch_size} over '
                f'{self.world_size} process(es) is {global_batch_size / self.world_size:g} '
                f'samples per process, but train_dataloader.batch_size is {batch_size}: set '
                f'batch_size={global_batch_size // self.world_size} or launch '
                f'{global_batch_size // batch_size if batch_size else "?"} processes')
        if mix_group < 1 or batch_size % mix_group:
            raise ValueError(f'GlobalBatchSampler: mix_group={mix_group} must divide the '
                             f'per-process batch_size={batch_size} (whole groups per process)')
        if not drop_last:
            raise ValueError('GlobalBatchSampler: drop_last=False is not supported (every '
                             'global batch is whole)')
        self.sampler = sampler
        self.batch_size = batch_size
        self.global_batch_size = global_batch_size
        self.mix_group = mix_group
        self.drop_last = True
        self.num_samples = len(sampler.dataset)
        if self.num_samples < global_batch_size:
            raise ValueError(f'GlobalBatchSampler: the dataset has {self.num_samples} samples, '
                             f'fewer than global_batch_size={global_batch_size}')
        self._skip = (None, 0)  # (epoch, batches)
        check = getattr(sampler.dataset, 'check_batches', None)
        if check is not None:  # a cache of mixed batches: made with this plan?
            check(seed=int(sampler.seed), global_batch_size=global_batch_size,
                  mix_group=mix_group)

    @property
    def seed(self) -> int:
        return int(self.sampler.seed)

    @property
    def epoch(self) -> int:
        return int(self.sampler.epoch)

    @property
    def num_batches(self) -> int:
        """Global batches per epoch (the dataset's last partial one dropped)."""
        return self.num_samples // self.global_batch_size

    def skip(self, epoch: int, num_batches: int) -> None:
        """Epoch ``epoch`` starts at global batch ``num_batches`` (a run resumed in the middle
        of it); later epochs are whole."""
        if not 0 <= num_batches <= self.num_batches:
            raise ValueError(f'GlobalBatchSampler.skip(epoch={epoch}, {num_batches}): an epoch '
                             f'has {self.num_batches} batches')
        self._skip = (int(epoch), int(num_batches))

    def _skipped(self) -> int:
        epoch, n = self._skip
        return n if epoch == self.epoch else 0

    def __len__(self) -> int:
        return self.num_batches - self._skipped()

    def __iter__(self) -> Iterator[List[BatchSlot]]:
        epoch = self.epoch
        check = getattr(self.sampler.dataset, 'check_epoch', None)
        if check is not None:
            check(epoch)
        order = epoch_order(self.seed, epoch, self.num_samples)
        share = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        for b in range(self._skipped(), self.num_batches):
            yield global_batch(self.seed, epoch, b, self.global_batch_size, self.mix_group,
                               self.num_samples, order)[share]
