"""Teacher-logit cache (docs/teacher_cache.md): seeded replay of augmentations, exactness with
k = K, the top-k reconstruction, clear errors, and the tool + training end to end. Real
Fashion-MNIST (small subsets) and the teacher checkpoint of conftest's fixture."""
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmengine.dataset.base_dataset import Compose
from torch.utils.data import DataLoader

import mmkd  # noqa: F401
from conftest import CNN, DEIT, FMNIST, VIT
from mmkd.datasets import (EpochIndexSampler, TeacherLogitsCache, TeacherLogitsDataset,
                           cache_teacher_logits, check_cacheable, reconstruct_logits)
from mmkd.datasets.teacher_logits import UNDERFLOW_GAP
from mmkd.registry import DATASETS, MODELS
from tools_helpers import PY, SMALL_RUN, run_tool, scalars

pytestmark = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared: run tools/setup_env.sh')

PRE = dict(type='ClsDataPreprocessor', num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)
N, EPOCHS, K = 48, 2, 10
# real randomness, so that the seeds matter: crops of 20-100% of the area, and flips
PIPELINE = [dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.2, 1.0)),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs')]
LOGIT_LOSSES = dict(loss_kd=dict(type='KDLoss', tau=4.0),
                    loss_nkd=dict(type='NKDLoss', tau=1.0, gamma=1.5),
                    loss_dkd=dict(type='DKDLoss', alpha=1.0, beta=8.0, tau=4.0))
DEIT_LOSSES = dict(loss_deit=dict(type='DeiTLoss', mode='soft', tau=3.0))


@pytest.fixture(scope='module')
def fmnist():
    """The first N training images with a random pipeline (loaded once: parsing is slow)."""
    return DATASETS.build(dict(type='FashionMNIST', data_root=FMNIST, split='train', indices=N,
                               pipeline=PIPELINE))


def distiller(teacher_ckpt, student=VIT, losses=LOGIT_LOSSES, cached=False, **kwargs):
    cfg = dict(type='ClassificationDistiller', student=student, distill_losses=losses,
               data_preprocessor=PRE)
    cfg.update(kwargs)
    if cached:
        cfg.update(teacher=None, logit_cache=True)
    else:
        cfg.update(teacher=CNN, teacher_ckpt=teacher_ckpt)
    return MODELS.build(cfg)


def make_cache(teacher_ckpt, dataset, out, topk=None, model=None, **kwargs):
    model = model or distiller(teacher_ckpt, losses=dict(loss_kd=dict(type='KDLoss')))
    return cache_teacher_logits(model, dataset, str(out), epochs=EPOCHS, topk=topk,
                                batch_size=16, base_seed=1, teacher_ckpt=teacher_ckpt,
                                progress=False, **kwargs)


def replay_loader(dataset, workers=0, batch_size=16):
    sampler = EpochIndexSampler(DefaultSampler(dataset, shuffle=True, seed=0), dataset=dataset)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=pseudo_collate,
                      num_workers=workers, persistent_workers=workers > 0)


def test_replayed_augmentation_is_bit_identical(teacher_ckpt, fmnist, tmp_path):
    model = distiller(teacher_ckpt, losses=dict(loss_kd=dict(type='KDLoss')))
    seen = {}  # (epoch, index) -> the uint8 image the teacher's batch was made from

    def record(module, args):
        for img, sample in zip(args[0]['inputs'], args[0]['data_samples']):
            seen[(sample.cache_epoch, sample.cache_index)] = img.clone()
    model.data_preprocessor.register_forward_pre_hook(record)
    cache = make_cache(teacher_ckpt, fmnist, tmp_path / 'cache', model=model)
    assert len(seen) == EPOCHS * N

    # the augmentation is really random: epochs (other seeds) give other images
    differ = sum(not torch.equal(seen[(0, i)], seen[(1, i)]) for i in range(N))
    assert differ >= N * 3 // 4, f'only {differ}/{N} images differ between epochs'

    dataset = TeacherLogitsDataset(fmnist, str(tmp_path / 'cache'))
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    dataset[(1, 5)]
    assert random.getstate() == states[0], 'the global random state was changed'
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])

    # shuffled, through 2 persistent workers: the epoch must reach them at every set_epoch
    loader = replay_loader(dataset, workers=2)
    for epoch in (1, 0):
        loader.sampler.set_epoch(epoch)
        count = 0
        for batch in loader:
            for img, sample in zip(batch['inputs'], batch['data_samples']):
                assert sample.cache_epoch == epoch
                assert torch.equal(img, seen[(epoch, sample.cache_index)]), (epoch, sample)
                assert torch.equal(sample.teacher_logits,
                                   torch.from_numpy(cache.logits(epoch, sample.cache_index)))
                count += 1
        assert count == N


def _loss_pair(teacher_ckpt, cache_dir, fmnist, **kw):
    online = distiller(teacher_ckpt, **kw)
    cached = distiller(teacher_ckpt, cached=True, **kw)
    cached.student.load_state_dict(online.student.state_dict())
    loader = replay_loader(TeacherLogitsDataset(fmnist, str(cache_dir)))
    loader.sampler.set_epoch(1)
    batch = next(iter(loader))
    out = []
    for model in (online, cached):
        model.train()
        data = model.data_preprocessor(batch, True)
        torch.manual_seed(0)  # the students' DropPath draws the same
        out.append((model.teacher_records(data['inputs'], data['data_samples'])['logits'],
                    model.loss(data['inputs'], data['data_samples'])))
    return out


def test_full_k_cache_gives_the_online_losses(teacher_ckpt, fmnist, tmp_path):
    """k = K: the cached logits are the teacher's, so KD/NKD/DKD/DeiT-soft equal the online
    losses. Tolerance rtol=1e-5/atol=1e-6 rather than torch.equal: the cache ran the teacher on
    batches in index order, training on a shuffled batch, and CPU conv kernels may block the
    batch differently (a few float32 ulps; on the CPU this was written on they are in fact
    bit-equal); bit-equality is asserted where it holds by construction (the images, above)."""
    make_cache(teacher_ckpt, fmnist, tmp_path / 'cache')
    (t_online, l_online), (t_cached, l_cached) = _loss_pair(teacher_ckpt, tmp_path / 'cache',
                                                            fmnist)
    torch.testing.assert_close(t_cached, t_online, rtol=1e-5, atol=1e-6)
    assert all(l_online[name] > 0 for name in LOGIT_LOSSES)
    for name in ('loss_kd', 'loss_nkd', 'loss_dkd', 'loss_cls'):
        torch.testing.assert_close(l_cached[name], l_online[name], rtol=1e-5, atol=1e-6,
                                   msg=name)
    (t_online, l_online), (t_cached, l_cached) = _loss_pair(
        teacher_ckpt, tmp_path / 'cache', fmnist, student=DEIT, losses=DEIT_LOSSES)
    torch.testing.assert_close(l_cached['loss_deit'], l_online['loss_deit'], rtol=1e-5,
                               atol=1e-6)
    assert l_online['loss_deit'] > 0


def _softmax64(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_topk_keeps_topk_logits_and_rest_mass(teacher_ckpt, fmnist, tmp_path):
    full = make_cache(teacher_ckpt, fmnist, tmp_path / 'full')
    k = 3
    top = make_cache(teacher_ckpt, fmnist, tmp_path / 'top3', topk=k)
    assert top.arrays()['values'].shape == (EPOCHS, N, k)
    assert top.arrays()['indices'].dtype == np.int16
    assert np.array_equal(top.arrays()['seeds'], full.arrays()['seeds'])
    for e in range(EPOCHS):
        for i in range(N):
            exact, approx = full.logits(e, i), top.logits(e, i)
            order = np.argsort(-exact, kind='stable')
            top_idx, rest_idx = order[:k], order[k:]
            assert np.array_equal(approx[top_idx], exact[top_idx])  # bit-exact
            rest = approx[rest_idx]
            assert np.all(rest == rest[0]) and rest[0] <= exact[top_idx].min()
            p_exact, p_approx = _softmax64(exact), _softmax64(approx)
            np.testing.assert_allclose(p_approx[rest_idx].sum(), p_exact[rest_idx].sum(),
                                       rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(p_approx[top_idx], p_exact[top_idx], rtol=1e-5,
                                       atol=1e-7)
    # not trivially so: the teacher's rest mass is substantial here
    assert _softmax64(exact)[rest_idx].sum() > 1e-3


def test_reconstruction_against_numpy():
    """Independent numpy reference on synthetic logits, from flat to very peaked. The rest's
    total probability is kept up to float32 rounding of the stored lse and of c: an absolute
    error of a few (|lse| + |c|) * 2^-24."""
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((64, 100)) * rng.choice([0.1, 3.0, 30.0, 300.0], (64, 1))
              ).astype(np.float32)
    z64 = logits.astype(np.float64)
    lse = (np.log(np.exp(z64 - z64.max(1, keepdims=True)).sum(1)) + z64.max(1)).astype(np.float32)
    assert np.array_equal(reconstruct_logits(logits, np.tile(np.arange(100), (64, 1)), lse, 100),
                          logits)  # k = K: exact
    p = _softmax64(logits)
    for k in (1, 5, 99):
        idx = np.argsort(-logits, 1)[:, :k]
        vals = np.take_along_axis(logits, idx, 1)
        rec = reconstruct_logits(vals, idx, lse, 100)
        assert np.array_equal(np.take_along_axis(rec, idx, 1), vals)  # top-k exact
        rest_mask = np.ones_like(p, bool)
        np.put_along_axis(rest_mask, idx, False, 1)
        assert np.all((rec[rest_mask] <= np.repeat(vals.min(1), 100 - k)))
        q = _softmax64(rec)
        tol = 4 * 2.0**-24 * (1 + np.abs(lse) + np.abs(rec).max(1))
        assert np.all(np.abs((q * rest_mask).sum(1) - (p * rest_mask).sum(1)) <= tol)
        assert np.all(np.abs(np.take_along_axis(q - p, idx, 1)).max(1) <= tol)
    # the rest's mass is 0 to float32 precision (lse == the top logit): UNDERFLOW_GAP below
    rec = reconstruct_logits(np.float32([[0.0]]), np.array([[2]]), np.float32([0.0]), 4)
    assert np.array_equal(rec, np.float32([[-UNDERFLOW_GAP, -UNDERFLOW_GAP, 0, -UNDERFLOW_GAP]]))


def test_cache_file_format_and_fp16(teacher_ckpt, fmnist, tmp_path):
    cache = make_cache(teacher_ckpt, fmnist, tmp_path / 'c16', topk=4, fp16=True)
    a = cache.arrays()
    assert a['values'].dtype == np.float16 and a['lse'].dtype == np.float32
    assert a['seeds'].dtype == np.int64 and a['seeds'].shape == (EPOCHS, N)
    assert len(np.unique(a['seeds'])) == EPOCHS * N
    assert isinstance(a['values'], np.memmap)
    meta = cache.meta
    assert (meta['num_samples'], meta['num_classes'], meta['topk'], meta['epochs']) == \
        (N, K, 4, EPOCHS)
    assert meta['base_seed'] == 1 and meta['values_dtype'] == 'float16'
    assert meta['teacher_ckpt'] == teacher_ckpt and len(meta['teacher_ckpt_sha256']) == 64
    assert 'RandomResizedCrop' in meta['pipeline']
    TeacherLogitsDataset(fmnist, str(tmp_path / 'c16'), teacher_ckpt=teacher_ckpt)  # same hash
    other = tmp_path / 'other.pth'
    other.write_bytes(b'not the teacher')
    with pytest.raises(ValueError, match='sha256'):
        TeacherLogitsDataset(fmnist, str(tmp_path / 'c16'), teacher_ckpt=str(other))


def test_clear_errors(teacher_ckpt, fmnist, tmp_path):
    make_cache(teacher_ckpt, fmnist, tmp_path / 'cache')
    path = str(tmp_path / 'cache')
    meta = osp.join(path, 'meta.json')
    # wrong N (another subset) / wrong K
    with pytest.raises(ValueError, match=rf'{meta}.* holds {N} samples, but .* has 32'):
        TeacherLogitsDataset(fmnist.get_subset(32), path)
    with pytest.raises(ValueError, match=rf'{meta}.* of {K} classes, but .* has 12'):
        TeacherLogitsDataset(fmnist, path, num_classes=12)
    # another pipeline: the replay would not be the cached images
    other = fmnist.get_subset(list(range(N)))
    other.pipeline = Compose([dict(type='PackInputs')])
    with pytest.raises(ValueError, match='pipeline differs'):
        TeacherLogitsDataset(other, path)
    with pytest.raises(FileNotFoundError, match='cache_teacher_logits.py'):
        TeacherLogitsDataset(fmnist, str(tmp_path / 'nothing'))

    dataset = TeacherLogitsDataset(fmnist, path)
    # plain int index: a plain sampler
    with pytest.raises(TypeError, match='EpochIndexSampler'):
        dataset[3]
    plain = DataLoader(dataset, batch_size=4, sampler=DefaultSampler(dataset, seed=0),
                       collate_fn=pseudo_collate)
    with pytest.raises(TypeError, match='EpochIndexSampler'):
        next(iter(plain))
    # epoch beyond the cache: in the dataset and, at the epoch's start, in the sampler
    with pytest.raises(IndexError, match=f'holds {EPOCHS} epoch'):
        dataset[(EPOCHS, 0)]
    with pytest.raises(IndexError, match='cycle_epochs=True'):
        replay_loader(dataset).sampler.set_epoch(EPOCHS)
    for sampler in ('InfiniteSampler', 'RepeatAugSampler'):  # no epochs / repeats in one
        with pytest.raises(ValueError, match=f'{sampler}.*DefaultSampler'):
            EpochIndexSampler(dict(type=sampler), dataset=dataset, seed=0)
    cycling = TeacherLogitsDataset(fmnist, path, cycle_epochs=True)
    a, b = cycling[(EPOCHS + 1, 7)], cycling[(1, 7)]
    assert torch.equal(a['inputs'], b['inputs'])
    assert torch.equal(a['data_samples'].teacher_logits, b['data_samples'].teacher_logits)

    # losses needing teacher features, and mixing, cannot work from the cache
    with pytest.raises(ValueError, match='logit cache'):
        distiller(teacher_ckpt, cached=True, student_taps=dict(feat='backbone'),
                  losses=dict(loss_fitnet=dict(type='FitNetLoss', s_channels=64, t_channels=64,
                                               feat_type='tokens')))
    mixup = dict(PRE, batch_augments=dict(augments=[dict(type='Mixup', alpha=0.8)]))
    with pytest.raises(ValueError, match='mixes samples'):
        distiller(teacher_ckpt, cached=True, data_preprocessor=mixup)
    # ... nor can a cache be made with mixing, or from the cached distiller
    with pytest.raises(ValueError, match='batch augments'):
        make_cache(teacher_ckpt, fmnist, tmp_path / 'mixed',
                   model=distiller(teacher_ckpt, data_preprocessor=mixup))
    with pytest.raises(ValueError, match='online'):
        check_cacheable(distiller(teacher_ckpt, cached=True))
    assert not osp.exists(tmp_path / 'mixed')


def test_tool_then_train_from_cache(teacher_ckpt, tmp_path):
    """The tool caches 1 epoch of 128 images; tools/train.py trains the cached config from it
    (2 iterations, the config's 2 persistent workers) and logs the KD loss."""
    out = tmp_path / 'cache'
    proc = run_tool([PY, 'tools/cache_teacher_logits.py',
                     'configs/kd/vit-small_resnet-small_1xb128_fmnist.py', '--epochs', '1',
                     '--topk', '10', '--out', str(out), '--batch-size', '64', '--num-workers', '0',
                     '--cfg-options', f'model.teacher_ckpt={teacher_ckpt}',
                     'train_dataloader.dataset.indices=128'])
    assert 'top-10 of 10 logits' in proc.stdout
    cache = TeacherLogitsCache(str(out))
    assert (cache.epochs, cache.num_samples) == (1, 128)
    # the training loader keeps the config's 2 persistent workers
    options = [o for o in SMALL_RUN
               if not o.startswith(('train_dataloader.', 'val_dataloader.dataset'))] + [
        f'train_dataloader.dataset.cache={out}', 'train_dataloader.dataset.dataset.indices=128',
        'train_dataloader.batch_size=64', 'train_cfg.max_epochs=1',
        'val_dataloader.dataset.indices=200', 'default_hooks.logger.interval=1']
    proc = run_tool([PY, 'tools/train.py',
                     'configs/kd/vit-small_resnet-small_1xb128_fmnist_cached.py',
                     '--work-dir', str(tmp_path / 'work'), '--cfg-options', *options])
    assert 'teacher-logit cache' in proc.stdout + proc.stderr
    records = scalars(tmp_path / 'work')
    kd = [r['loss_kd'] for r in records if 'loss_kd' in r]
    assert len(kd) == 2 and all(np.isfinite(kd)) and all(v > 0 for v in kd)
    assert any('accuracy/top1' in r for r in records)
