"""LabelledBatchSampler (mmkd/datasets/labelled_batch_sampler.py): a fixed number of labelled
images per batch, the same labelled stream for every model of a seed, sharded under DDP."""
import os.path as osp

import pytest
import torch
from mmengine.dataset import DefaultSampler

from conftest import FMNIST
from mmkd.datasets import LabelledBatchSampler, UNLABELLED
from mmkd.registry import DATA_SAMPLERS


class Indexed:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def sampler(n=100, seed=0, epoch=0, rank=0, world_size=1):
    s = DefaultSampler(Indexed(n), shuffle=True, seed=seed)
    s.set_epoch(epoch)
    s.rank, s.world_size = rank, world_size
    return s


def batches(**kwargs):
    labelled, num_labelled = kwargs.pop('labelled', 4), kwargs.pop('num_labelled', 10)
    batch_size = kwargs.pop('batch_size', 8)
    return list(LabelledBatchSampler(sampler(**kwargs), batch_size, labelled, num_labelled))


def test_every_batch_has_its_labelled_images_and_the_rest_unlabelled():
    out = batches()
    assert len(out) == 100 // 8
    for b in out:
        assert len(b) == 8 and all(i < 10 for i in b[:4]) and all(10 <= i < 100 for i in b[4:])
    lab = [i for b in out for i in b[:4]]
    # 48 draws from 10 images: every pass over them is a permutation
    for p in range(4):
        assert sorted(lab[10 * p:10 * (p + 1)]) == list(range(10))
    unl = [i for b in out for i in b[4:]]
    assert len(set(unl)) == len(unl) == 48  # fewer than the 90 unlabelled: no repeat


def test_order_is_a_function_of_seed_and_epoch():
    assert batches() == batches()
    assert batches() != batches(epoch=1) and batches() != batches(seed=1)
    # the wrapped sampler's own order is not used
    s = sampler()
    a = list(LabelledBatchSampler(s, 8, 4, 10))
    list(s)
    assert list(LabelledBatchSampler(s, 8, 4, 10)) == a


def test_ranks_share_the_global_streams():
    one = batches(batch_size=8)
    two = [batches(batch_size=4, labelled=2, rank=r, world_size=2) for r in (0, 1)]
    assert len(two[0]) == len(two[1]) == len(one) == 12
    lab = [i for b in one for i in b[:4]]
    lab2 = [None] * len(lab)
    lab2[0::2] = [i for b in two[0] for i in b[:2]]
    lab2[1::2] = [i for b in two[1] for i in b[:2]]
    assert lab2 == lab  # rank r takes every 2nd index of the same stream


def test_bad_settings_are_errors_naming_them():
    with pytest.raises(ValueError, match='labelled=9 images per batch, with batch_size=8'):
        batches(labelled=9)
    with pytest.raises(ValueError, match='num_labelled=100 of a dataset of 100'):
        batches(num_labelled=100)
    with pytest.raises(TypeError, match="has no 'seed'"):
        LabelledBatchSampler(torch.utils.data.SequentialSampler(range(10)), 8, 4, 5)


@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                    reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
def test_runner_dataloader_gives_the_labelled_count_with_partial_labels():
    """Built by MMEngine's Runner from a config (batch_sampler with the runner's sampler and
    batch size), on real Fashion-MNIST with PartialLabels: each batch has exactly ``labelled``
    samples with a label."""
    from mmengine.runner import Runner
    cfg = dict(
        dataset=dict(type='FashionMNIST', data_root=FMNIST, split='train',
                     indices=600, pipeline=[dict(type='mmkd.PartialLabels', num_labelled=60),
                                            dict(type='PackInputs')]),
        sampler=dict(type='DefaultSampler', shuffle=True),
        batch_sampler=dict(type='mmkd.LabelledBatchSampler', labelled=16, num_labelled=60),
        batch_size=32, num_workers=0, collate_fn=dict(type='default_collate'))
    loader = Runner.build_dataloader(cfg, seed=3)
    assert isinstance(loader.batch_sampler, LabelledBatchSampler) and len(loader) == 600 // 32
    for data in loader:
        labels = torch.cat([s.gt_label for s in data['data_samples']])
        assert int((labels != UNLABELLED).sum()) == 16
        assert (labels[:16] != UNLABELLED).all() and (labels[16:] == UNLABELLED).all()
    assert DATA_SAMPLERS.get('LabelledBatchSampler') is LabelledBatchSampler
