"""A sampler wrapper that sends the epoch with every index, for per-epoch seeded datasets."""
import warnings
from typing import Iterator, Optional, Sized, Tuple, Union

from mmengine.dataset import InfiniteSampler
from torch.utils.data import Sampler

from mmkd.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class EpochIndexSampler(Sampler):
    """Wraps any sampler and yields ``(epoch, index)`` pairs instead of ``index``.

    Datasets that depend on the epoch, like :class:`~mmkd.datasets.TeacherLogitsDataset`
    (which replays epoch ``e``'s augmentation of sample ``i`` and reads its cached teacher
    logits), need the epoch *inside the dataloader workers*. Why a sampler:

    - MMEngine tells the epoch only to the sampler: ``DistSamplerSeedHook.before_train_epoch``
      calls ``dataloader.sampler.set_epoch(runner.epoch)`` (also after ``--resume``), and
      ``_InfiniteDataloaderIterator`` of the iteration-based loop calls ``set_epoch`` whenever
      it restarts the dataloader; both run in the main process.
    - The sampler is iterated in the main process and its items are sent to the workers with
      every batch request, so the epoch travels with each index: it is right in persistent
      workers (which keep the copy of the dataset made when they started, so an attribute set
      on the main process's dataset, e.g. by a hook, never reaches them), with ``fork`` and
      ``spawn``, with ``num_workers=0`` and under DDP (the wrapped sampler still shards by rank).
      A shared-memory epoch counter would also reach the workers, but needs its own plumbing
      per start method and holds only while ``set_epoch`` precedes every prefetch; an item
      that names its epoch is right by construction, and shows up in errors and data samples.

    Args:
        sampler (dict | Sampler): the sampler to wrap, e.g. ``dict(type='DefaultSampler',
            shuffle=True)``; built with the same ``dataset`` and ``seed`` the runner passes.
            ``InfiniteSampler`` has no epochs and is refused: the iteration-based loop works
            with ``DefaultSampler`` (it restarts it and calls ``set_epoch``). mmpretrain's
            ``RepeatAugSampler`` is refused too: its repeats of a sample would replay one
            cached augmentation.
        dataset, seed: given by MMEngine's runner (``default_args``).
    """

    def __init__(self, sampler: Union[dict, Sampler], dataset: Optional[Sized] = None,
                 seed: Optional[int] = None):
        if isinstance(sampler, dict):
            sampler = DATA_SAMPLERS.build(sampler, default_args=dict(dataset=dataset, seed=seed))
        if isinstance(sampler, InfiniteSampler):
            raise ValueError('EpochIndexSampler: InfiniteSampler has no epochs (every sample '
                             'would replay epoch 0 forever); wrap a DefaultSampler, which the '
                             'iteration-based loop restarts with set_epoch')
        if type(sampler).__name__ == 'RepeatAugSampler':
            raise ValueError('EpochIndexSampler: RepeatAugSampler repeats each sample within an '
                             'epoch to get *different* augmentations of it, but a cache holds '
                             'one augmentation (and its logits) per (epoch, index): the repeats '
                             'would be identical. Use DefaultSampler.')
        self.sampler = sampler
        self.dataset = dataset
        self.epoch = 0
        self._iterated_epoch = None
        self._warned = False
        self._skip = (None, 0)  # (epoch, samples)

    def skip(self, epoch: int, num_samples: int) -> None:
        """Epoch ``epoch`` starts ``num_samples`` into its order (and is that much shorter):
        a run resumed from a checkpoint in the middle of an epoch goes on with the samples
        that epoch had not reached. Later epochs are whole."""
        if not 0 <= num_samples <= len(self.sampler):
            raise ValueError(f'EpochIndexSampler.skip(epoch={epoch}, {num_samples}): an epoch '
                             f'has {len(self.sampler)} samples')
        self._skip = (int(epoch), int(num_samples))

    def _skipped(self) -> int:
        epoch, n = self._skip
        return n if epoch == self.epoch else 0

    def set_epoch(self, epoch: int) -> None:
        check = getattr(self.dataset, 'check_epoch', None)
        if check is not None:
            check(epoch)  # fail in the main process, at the start of the epoch
        self.epoch = int(epoch)
        self._iterated_epoch = None
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        if self._iterated_epoch == self.epoch and not self._warned:
            self._warned = True
            warnings.warn(f'EpochIndexSampler iterated twice at epoch {self.epoch} without '
                          'set_epoch() in between (is DistSamplerSeedHook missing from '
                          'default_hooks?): this epoch replays the augmentations and teacher '
                          'logits of the last one')
        self._iterated_epoch = epoch = self.epoch
        skip = self._skipped()
        for n, index in enumerate(self.sampler):
            if n >= skip:
                yield epoch, int(index)

    def __len__(self) -> int:
        return len(self.sampler) - self._skipped()


def runner_sampler_info(owner: str, sampler) -> Tuple[int, int]:
    """``(rank, world_size)`` of the sampler MMEngine's runner gives a batch sampler (its
    ``DefaultSampler``), whose ``seed``, ``epoch`` and ``dataset`` the batch sampler reads;
    an error naming ``owner`` when it has none of them."""
    for attr in ('seed', 'epoch', 'dataset'):
        if not hasattr(sampler, attr):
            raise TypeError(f'{owner}: the dataloader sampler {type(sampler).__name__} has no '
                            f"{attr!r}; use sampler=dict(type='DefaultSampler', shuffle=True)")
    return getattr(sampler, 'rank', 0), getattr(sampler, 'world_size', 1)
