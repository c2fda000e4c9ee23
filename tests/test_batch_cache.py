"""Teacher-logit batch cache (docs/teacher_cache.md): batches and their mixup/cutmix draws a
function of (seed, epoch, global batch), the same in 1 and 2 processes; with k = K the cached
losses equal the online teacher's on the same mixed batches; a stopped writer continues; clear
errors for a cache read with other batches. Real Fashion-MNIST, conftest's teacher checkpoint."""
import copy
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

import mmkd  # noqa: F401
from conftest import CNN, DEIT, FMNIST, VIT
from mmkd.datasets import (BatchLogitsCache, BatchTeacherLogitsDataset, GlobalBatchSampler,
                           SeededDataset, verify_batch_cache, write_batch_cache)
from mmkd.datasets.batch_logits import writer_files
from mmkd.registry import DATASETS, MODELS
from tools_helpers import PY, SMALL_RUN, run_tool, scalars

pytestmark = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared: run tools/setup_env.sh')

N, G, M, SEED, EPOCHS = 96, 32, 8, 3, 2
PIPELINE = [dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.2, 1.0)),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs')]
# every group draws one of the three (mixup, cutmix, nothing): all occur in a few batches
MIX = dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)],
           probs=[0.4, 0.4])
PRE = dict(type='SeededClsDataPreprocessor', num_classes=10, mean=[72.94], std=[90.02],
           to_rgb=False, batch_augments=MIX)
LOSSES = dict(loss_kd=dict(type='KDLoss', tau=4.0),
              loss_nkd=dict(type='NKDLoss', tau=1.0, gamma=1.5),
              loss_dkd=dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0))
DEIT_LOSSES = dict(loss_soft=dict(type='DeiTLoss', mode='soft', tau=3.0),
                   loss_hard=dict(type='DeiTLoss', mode='hard'))


@pytest.fixture(scope='module')
def fmnist():
    return DATASETS.build(dict(type='FashionMNIST', data_root=FMNIST, split='train', indices=N,
                               pipeline=PIPELINE))


def distiller(teacher_ckpt, student=VIT, losses=LOSSES, cached=False, pre=PRE):
    cfg = dict(type='ClassificationDistiller', student=student, distill_losses=losses,
               data_preprocessor=pre)
    cfg.update(dict(teacher=None, logit_cache=True) if cached else
               dict(teacher=CNN, teacher_ckpt=teacher_ckpt))
    return MODELS.build(cfg)


def fake_sampler(dataset, rank=0, world_size=1, epoch=0, seed=SEED):
    """What GlobalBatchSampler reads of MMEngine's DefaultSampler, for process ``rank``."""
    return SimpleNamespace(seed=seed, epoch=epoch, rank=rank, world_size=world_size,
                           dataset=dataset)


def batches(dataset, world_size=1, rank=0, epoch=0, seed=SEED, mix_group=M):
    sampler = GlobalBatchSampler(fake_sampler(dataset, rank, world_size, epoch, seed),
                                 G // world_size, G, mix_group)
    return [pseudo_collate([dataset[slot] for slot in b]) for b in sampler]


def write(teacher_ckpt, dataset, out, **kw):
    return write_batch_cache(distiller(teacher_ckpt, losses=dict(loss_kd=dict(type='KDLoss'))),
                             dataset, str(out), epochs=EPOCHS, seed=SEED, global_batch_size=G,
                             mix_group=M, progress=False, **kw)


def test_mixed_batches_are_the_same_in_one_and_two_processes(fmnist):
    """Each of 2 processes' shares, preprocessed alone, are the halves of the 1-process batch,
    bit for bit, mixup and cutmix on; the batches and the mixing change with the epoch."""
    pre = MODELS.build(PRE)
    seeded = SeededDataset(fmnist)
    for epoch in (0, 1):
        one = [pre(b, True) for b in batches(seeded, epoch=epoch)]
        two = [[pre(b, True) for b in batches(seeded, 2, rank, epoch)] for rank in (0, 1)]
        assert len(one) == N // G
        for b, whole in enumerate(one):
            halves = [two[rank][b] for rank in (0, 1)]
            torch.testing.assert_close(torch.cat([h['inputs'] for h in halves]), whole['inputs'],
                                       rtol=0, atol=0)
            scores = torch.stack([s.gt_score for h in halves for s in h['data_samples']])
            torch.testing.assert_close(scores, torch.stack(
                [s.gt_score for s in whole['data_samples']]), rtol=0, atol=0)
    # really mixed: soft targets in most groups, and other draws in another epoch
    scores = torch.stack([s.gt_score for b in one for s in b['data_samples']])
    assert (scores.max(1).values < 1).float().mean() > 0.3
    e0 = batches(seeded, epoch=0)[0]['data_samples']
    e1 = batches(seeded, epoch=1)[0]['data_samples']
    assert [s.sample_idx for s in e0] != [s.sample_idx for s in e1]
    # a sample's pipeline draws do not depend on the worker or on the order it is loaded in
    slot = next(iter(GlobalBatchSampler(fake_sampler(seeded), G, G, M)))[5]
    torch.testing.assert_close(seeded[slot]['inputs'], seeded[slot]['inputs'], rtol=0, atol=0)


def test_full_k_cache_gives_the_online_losses_on_the_same_mixed_batches(teacher_ckpt, fmnist,
                                                                        tmp_path):
    """k = K: KD, NKD, DKD and DeiT (soft, hard, distillation token) from the cache equal the
    online teacher's on the same mixed batches, in both epochs, in 1 and in 2 processes."""
    cache = write(teacher_ckpt, fmnist, tmp_path / 'cache')
    assert (cache.epochs, cache.num_batches, cache.topk) == (EPOCHS, N // G, 10)
    cached_data = BatchTeacherLogitsDataset(fmnist, str(tmp_path / 'cache'))
    online_data = SeededDataset(fmnist)
    for student, losses in ((VIT, LOSSES), (DEIT, DEIT_LOSSES)):
        online = distiller(teacher_ckpt, student, losses)
        cached = distiller(teacher_ckpt, student, losses, cached=True)
        cached.student.load_state_dict(online.student.state_dict())
        for world_size, rank, epoch in ((1, 0, 1), (2, 1, 0)):
            b_online = batches(online_data, world_size, rank, epoch)[1]
            b_cached = batches(cached_data, world_size, rank, epoch)[1]
            out = []
            for model, batch in ((online, b_online), (cached, b_cached)):
                model.train()
                data = model.data_preprocessor(batch, True)
                torch.manual_seed(0)  # the students' DropPath draws the same
                out.append((data['inputs'],
                            model.teacher_records(data['inputs'], data['data_samples'])['logits'],
                            model.loss(data['inputs'], data['data_samples'])))
            (x_on, t_on, l_on), (x_ca, t_ca, l_ca) = out
            torch.testing.assert_close(x_ca, x_on, rtol=0, atol=0)  # the same mixed images
            torch.testing.assert_close(t_ca, t_on, rtol=1e-5, atol=1e-6)
            for name in list(losses) + ['loss_cls']:
                name = name if name in l_on else next(k for k in l_on if name in k)
                assert l_on[name] > 0
                torch.testing.assert_close(l_ca[name], l_on[name], rtol=1e-5, atol=1e-6,
                                           msg=name)


def test_two_writers_and_a_stopped_one_write_the_same_cache(teacher_ckpt, fmnist, tmp_path):
    """Writers 0 and 1 of 2 (taking turns here; tools/cache_teacher_logits.py runs them under
    torchrun) write the same records as one writer; a writer that stopped mid-way, with a torn
    record and log line on disk, continues to the same cache."""
    one = write(teacher_ckpt, fmnist, tmp_path / 'one')
    two_dir = tmp_path / 'two'
    assert write(teacher_ckpt, fmnist, two_dir, rank=0, world_size=2, max_batches=2) is None
    assert write(teacher_ckpt, fmnist, two_dir, rank=1, world_size=2, max_batches=1) is None
    bin_file, log_file = writer_files(str(two_dir), 0)
    with open(bin_file, 'ab') as f:
        f.write(b'\x01' * 100)  # a record cut short by the crash
    with open(log_file, 'a') as f:
        f.write('1 2')  # and a torn log line
    two = write(teacher_ckpt, fmnist, two_dir)  # one process finishes the rest
    assert two is not None and set(np.unique(two.index[..., 0])) == {0, 1}
    for e in range(EPOCHS):
        for b in range(N // G):
            assert one.slots(e, b).tobytes() == two.slots(e, b).tobytes(), (e, b)
    # verify: the teacher re-run on random batches matches; a changed record is caught
    model = distiller(teacher_ckpt, losses=dict(loss_kd=dict(type='KDLoss')))
    result = verify_batch_cache(model, fmnist, one, num_batches=3)
    assert len(result['batches']) == 3 and result['max_abs_logit'] < 1e-5
    writer, row = one.index[result['batches'][0]]
    records = np.memmap(writer_files(str(tmp_path / 'one'), int(writer))[0], dtype=one.dtype,
                        mode='r+', shape=(int(row) + 1, G))
    records[row, 0]['values'][0] += 0.5
    records.flush()
    assert verify_batch_cache(model, fmnist, BatchLogitsCache(str(tmp_path / 'one')),
                              num_batches=3)['max_abs_logit'] == pytest.approx(0.5, abs=1e-4)


def test_clear_errors(teacher_ckpt, fmnist, tmp_path):
    cache_dir = str(tmp_path / 'cache')
    write(teacher_ckpt, fmnist, cache_dir)
    data = BatchTeacherLogitsDataset(fmnist, cache_dir)
    # read with another global batch size, mixing group or seed: named, both values
    with pytest.raises(ValueError, match=r'global_batch_size 64 \(the training run.*\) vs 32'):
        GlobalBatchSampler(fake_sampler(data), 64, 64, M)
    with pytest.raises(ValueError, match=r'seed 4 .* vs 3 \(cache\)'):
        GlobalBatchSampler(fake_sampler(data, seed=4), G, G, M)
    with pytest.raises(ValueError, match=r'mix_group 16 .* vs 8 \(cache\)'):
        GlobalBatchSampler(fake_sampler(data), G, G, 16)
    # a per-process batch that does not make the global batch
    with pytest.raises(ValueError, match='2 process.*16 samples per process.*batch_size is 32'):
        GlobalBatchSampler(fake_sampler(fmnist, world_size=2), G, G, M)
    with pytest.raises(ValueError, match='mix_group=12 must divide'):
        GlobalBatchSampler(fake_sampler(fmnist), G, G, 12)
    with pytest.raises(TypeError, match='GlobalBatchSampler'):
        data[(0, 1)]
    with pytest.raises(IndexError, match='beyond the teacher-logit batch cache'):
        list(GlobalBatchSampler(fake_sampler(data, epoch=EPOCHS), G, G, M))
    # trained with other batch augments than the cache's images were mixed with
    other_mix = dict(PRE, batch_augments=dict(augments=[dict(type='Mixup', alpha=0.2)]))
    with pytest.raises(ValueError, match="images mixed by .*'CutMix'.*mixes with .*0.2"):
        MODELS.build(other_mix)(batches(data)[0], True)
    assert MODELS.build(PRE)(batches(data)[0], True)['inputs'].shape == (G, 1, 28, 28)
    # another dataset
    other = DATASETS.build(dict(type='FashionMNIST', data_root=FMNIST, split='train',
                                indices=N // 2, pipeline=PIPELINE))
    with pytest.raises(ValueError, match=r'num_samples 48 \(the training dataset\) vs 96'):
        BatchTeacherLogitsDataset(other, cache_dir)
    # a writer continuing another plan
    with pytest.raises(ValueError, match='cannot be continued: global_batch_size: 16 now vs 32'):
        write_batch_cache(distiller(teacher_ckpt, losses=dict(loss_kd=dict(type='KDLoss'))), fmnist,
                          cache_dir, epochs=EPOCHS, seed=SEED, global_batch_size=16,
                          mix_group=M, progress=False)
    # mixing with the global random state cannot be cached, nor trained from a cache
    def plain_mix():  # mmpretrain's RandomBatchAugment appends to the config's probs
        return copy.deepcopy(dict(PRE, type='ClsDataPreprocessor'))
    with pytest.raises(ValueError, match='SeededClsDataPreprocessor'):
        write_batch_cache(distiller(teacher_ckpt, pre=plain_mix()), fmnist, str(tmp_path / 'x'),
                          epochs=1, seed=SEED, global_batch_size=G, mix_group=M)
    with pytest.raises(ValueError, match=r"mixes samples \(\['Mixup', 'CutMix'\]\) with the "
                       'global random state'):
        distiller(teacher_ckpt, cached=True, pre=plain_mix())
    # batches that GlobalBatchSampler did not make
    pre = MODELS.build(PRE)
    plain = pseudo_collate([fmnist[i] for i in range(8)])
    with pytest.raises(KeyError, match='no mix_seed.*GlobalBatchSampler'):
        pre(plain, True)
    assert pre(plain, False)['inputs'].shape == (8, 1, 28, 28)  # no mixing outside training


@pytest.mark.slow  # tools in subprocesses
def test_tool_in_two_processes_then_verify_then_train(teacher_ckpt, tmp_path):
    """tools/cache_teacher_logits.py under torchrun (2 processes, gloo) writes the batch cache of
    the mixup config, byte for byte the one a single process writes; --verify re-runs the
    teacher on it, and tools/train.py trains the cached config from it (2 iterations), logging
    the KD loss."""
    out = tmp_path / 'cache'
    config = 'configs/kd/vit-small_resnet-small_1xb128_fmnist_mixup.py'
    options = ['--cfg-options', f'model.teacher_ckpt={teacher_ckpt}',
               'train_dataloader.dataset.dataset.indices=256']
    proc = run_tool([PY, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                     '--master_port', '29613', 'tools/cache_teacher_logits.py', config,
                     '--epochs', '1', '--out', str(out), '--batch-size', '64',
                     '--launcher', 'pytorch', '--device', 'cpu', *options])
    assert 'written by 2 process(es)' in proc.stdout
    cache = BatchLogitsCache(str(out))
    assert (cache.epochs, cache.num_batches, cache.global_batch_size) == (1, 2, 128)
    assert set(np.unique(cache.index[..., 0])) == {0, 1}
    # the same records as one process writes: the same mixed images, the same logits
    run_tool([PY, 'tools/cache_teacher_logits.py', config, '--epochs', '1', '--out',
              str(tmp_path / 'one'), '--batch-size', '64', '--device', 'cpu', *options])
    one = BatchLogitsCache(str(tmp_path / 'one'))
    assert set(np.unique(one.index[..., 0])) == {0}
    assert all(one.slots(0, b).tobytes() == cache.slots(0, b).tobytes() for b in range(2))
    proc = run_tool([PY, 'tools/cache_teacher_logits.py', config, '--out', str(out),
                     '--verify', '2', '--device', 'cpu', *options])
    assert 'verified 2 global batches' in proc.stdout
    assert float(proc.stdout.split('stored logit ')[1].split(',')[0]) < 1e-5
    train = [o for o in SMALL_RUN
             if not o.startswith(('train_dataloader.', 'val_dataloader.dataset'))] + [
        f'train_dataloader.dataset.cache={out}', 'train_dataloader.dataset.dataset.indices=256',
        'train_cfg.max_epochs=1', 'val_dataloader.dataset.indices=200',
        'default_hooks.logger.interval=1']
    run_tool([PY, 'tools/train.py', 'configs/kd/vit-small_resnet-small_1xb128_fmnist_mixup-cached.py',
              '--work-dir', str(tmp_path / 'work'), '--cfg-options', *train])
    kd = [r['loss_kd'] for r in scalars(tmp_path / 'work') if 'loss_kd' in r]
    assert len(kd) == 2 and all(np.isfinite(kd)) and all(v > 0 for v in kd)
