"""Batches with a fixed number of labelled images: semi-supervised training's labelled batch
beside its unlabelled one (FixMatch's), in one batch of the distiller."""
from typing import Iterator, List

import torch
from torch.utils.data import BatchSampler, Sampler

from mmkd.registry import DATA_SAMPLERS

from .samplers import runner_sampler_info


@DATA_SAMPLERS.register_module()
class LabelledBatchSampler(BatchSampler):
    """Every batch: ``labelled`` images of the labelled part of the dataset (its first
    ``num_labelled`` indices, the ones :class:`~mmkd.datasets.PartialLabels` keeps labelled),
    and ``batch_size - labelled`` of the others.

    A student trained alone and a distilled one then see the same labelled images in the same
    order: the cross-entropy stream is the same, and the distilled student's difference is what
    its distillation terms learn, on the unlabelled images too. (With plain batches of the
    whole set, ~10 % of each batch is labelled: a distilled student sees each label a tenth as
    often as a baseline trained on the labelled images alone.)

    Both parts are reshuffled every pass over them, from a generator seeded with the wrapped
    sampler's ``seed`` and ``epoch`` (so by ``DistSamplerSeedHook``'s ``set_epoch``, which
    MMEngine calls on ``batch_sampler.sampler``); under DDP each rank takes every
    ``world_size``-th index of both streams. An epoch has as many batches as one pass over the
    whole dataset in batches of ``batch_size`` (``len(dataset) // (world_size *
    batch_size)``), so epoch counts mean what they mean with a plain sampler.

    Args:
        sampler (Sampler): given by MMEngine's runner (the dataloader's ``sampler``, e.g.
            ``DefaultSampler``): its ``seed``, ``epoch``, ``rank``/``world_size`` and dataset
            are used, its order is not.
        batch_size (int): given by the runner (the dataloader's ``batch_size``): images per
            batch, per process.
        labelled (int): labelled images per batch, 1 to ``batch_size``.
        num_labelled (int): the labelled part, the dataset's first ``num_labelled`` indices;
            set it as PartialLabels' ``num_labelled``.
    """

    def __init__(self, sampler: Sampler, batch_size: int, labelled: int, num_labelled: int,
                 drop_last: bool = True):
        self.rank, self.world_size = runner_sampler_info('LabelledBatchSampler', sampler)
        n = len(sampler.dataset)
        if not 1 <= labelled <= batch_size:
            raise ValueError(f'LabelledBatchSampler: labelled={labelled} images per batch, with '
                             f'batch_size={batch_size}: give 1 to {batch_size}')
        if not 1 <= num_labelled <= n or (labelled < batch_size and num_labelled == n):
            raise ValueError(f'LabelledBatchSampler: num_labelled={num_labelled} of a dataset of '
                             f'{n} images: the labelled part must hold 1 to {n - 1} of them, '
                             'the rest fill the unlabelled part of each batch')
        if not drop_last:
            raise ValueError('LabelledBatchSampler: drop_last=False is not supported (every '
                             'batch has the same composition)')
        self.sampler = sampler
        self.batch_size = batch_size
        self.labelled = labelled
        self.num_labelled = num_labelled
        self.num_images = n
        self.drop_last = True
        if num_labelled < self.world_size:
            raise ValueError(f'LabelledBatchSampler: {num_labelled} labelled images cannot be '
                             f'shared by {self.world_size} processes')

    def __len__(self) -> int:
        return self.num_images // (self.world_size * self.batch_size)

    def _stream(self, g: torch.Generator, start: int, stop: int, count: int) -> List[int]:
        """``count`` indices of this rank from ``range(start, stop)``, reshuffled every pass."""
        need = count * self.world_size
        out: List[int] = []
        while len(out) < need:
            out += (torch.randperm(stop - start, generator=g) + start).tolist()
        return out[:need][self.rank::self.world_size]

    def __iter__(self) -> Iterator[List[int]]:
        g = torch.Generator().manual_seed(int(self.sampler.seed) * 1000003
                                          + int(self.sampler.epoch))
        steps, unlabelled = len(self), self.batch_size - self.labelled
        lab = self._stream(g, 0, self.num_labelled, steps * self.labelled)
        unl = self._stream(g, self.num_labelled, self.num_images, steps * unlabelled)
        for i in range(steps):
            yield (lab[i * self.labelled:(i + 1) * self.labelled]
                   + unl[i * unlabelled:(i + 1) * unlabelled])
