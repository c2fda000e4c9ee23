"""mmpretrain's classification preprocessor with batch augments (mixup, cutmix) that draw from
seeds the samples carry, so a cache can replay the mixed images exactly."""
import copy
import re
from typing import List, Optional, Tuple

import torch
from mmpretrain.models import ClsDataPreprocessor

from mmkd.datasets.teacher_logits import seeded_rng
from mmkd.registry import MODELS


class GroupedBatchAugment:
    """Runs a batch augment (mmpretrain's ``RandomBatchAugment``) on each mixing group of a
    batch, under the group's seed: which augment, λ, the cutmix box and the mixing partners
    are the group's alone. ``groups`` is set for each batch by the preprocessor."""

    def __init__(self, augment):
        self.augment = augment
        self.augments = getattr(augment, 'augments', [augment])  # as RandomBatchAugment's
        self.groups: List[Tuple[int, int, int]] = None

    def __call__(self, inputs: torch.Tensor, batch_score: torch.Tensor):
        if self.groups is None:
            raise RuntimeError('GroupedBatchAugment called without the batch\'s mixing groups')
        out_inputs, out_scores = [], []
        for start, stop, seed in self.groups:
            with seeded_rng(seed):
                x, s = self.augment(inputs[start:stop], batch_score[start:stop])
            out_inputs.append(x)
            out_scores.append(s)
        return torch.cat(out_inputs), torch.cat(out_scores)


def mixing_groups(data_samples) -> List[Tuple[int, int, int]]:
    """``(start, stop, mix_seed)`` of the consecutive runs of samples sharing a ``mix_seed``
    (:class:`~mmkd.datasets.GlobalBatchSampler` puts whole groups in a batch, in order)."""
    if not data_samples or 'mix_seed' not in data_samples[0]:
        raise KeyError(
            'SeededClsDataPreprocessor: the data samples carry no mix_seed, so the batch '
            "augments have no seeds to draw from: sample with batch_sampler=dict(type="
            "'GlobalBatchSampler', global_batch_size=..., mix_group=...) and a SeededDataset "
            '(or BatchTeacherLogitsDataset) around the training dataset')
    seeds = [int(s.mix_seed) for s in data_samples]
    groups, start = [], 0
    for i in range(1, len(seeds) + 1):
        if i == len(seeds) or seeds[i] != seeds[start]:
            groups.append((start, i, seeds[start]))
            start = i
    sizes = {stop - start for start, stop, _ in groups}
    if len(sizes) > 1 or len({seed for *_, seed in groups}) != len(groups):
        raise ValueError(f'SeededClsDataPreprocessor: the batch\'s mixing groups are not whole '
                         f'and in order (sizes {sorted(sizes)}): the batch was not made by '
                         'GlobalBatchSampler, or mix_group does not divide it')
    return groups


@MODELS.register_module()
class SeededClsDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` (same arguments) whose ``batch_augments`` run on each mixing
    group of a :class:`~mmkd.datasets.GlobalBatchSampler` batch under the group's seed
    (``mix_seed`` of its data samples), with Python's, numpy's and torch's CPU generators
    seeded and then restored. The mixed images are then a function of (seed, epoch, global
    batch, group) alone: the same in 1 or N processes, and the same when
    ``tools/cache_teacher_logits.py`` makes a cache of the teacher's logits on them as when
    training reads it (``BatchTeacherLogitsDataset``). Without batch augments it is
    ``ClsDataPreprocessor``."""

    def __init__(self, *args, **kwargs):
        if kwargs.get('batch_augments'):
            # RandomBatchAugment appends to the config's probs list: building the same config
            # twice would fail
            kwargs['batch_augments'] = copy.deepcopy(kwargs['batch_augments'])
        super().__init__(*args, **kwargs)
        self._augments_repr = None
        if self.batch_augments is not None:
            self.batch_augments = GroupedBatchAugment(self.batch_augments)
            augment = self.batch_augments.augment
            # fixed once built; compared with a cache's record at every training step
            self._augments_repr = re.sub(r' at 0x[0-9a-fA-F]+', '', repr(dict(
                augments=[(type(a).__name__, vars(a)) for a in self.batch_augments.augments
                          if a is not None], probs=getattr(augment, 'probs', None))))

    def augments_repr(self) -> Optional[str]:
        """The batch augments and their probabilities as text (recorded by a batch cache, which
        holds the logits of the images they mixed)."""
        return self._augments_repr

    def forward(self, data: dict, training: bool = False) -> dict:
        samples = data['data_samples']
        if training and samples and 'cache_batch_augments' in samples[0]:
            cached, mine = samples[0].cache_batch_augments, self.augments_repr()
            if cached != mine:
                raise ValueError(
                    'SeededClsDataPreprocessor: the teacher-logit batch cache holds the logits '
                    f'of images mixed by {cached}, but this preprocessor mixes with {mine}: '
                    'the cached logits are not those of these images. Train with the batch '
                    'augments the cache was made with, or remake it')
        if not (training and self.batch_augments is not None):
            return super().forward(data, training)
        self.batch_augments.groups = mixing_groups(samples)
        try:
            return super().forward(data, training)
        finally:
            self.batch_augments.groups = None
