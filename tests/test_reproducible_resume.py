"""Resume identical to the uninterrupted run with the real recipe's randomness
(ReproducibleResumeHook): a Fashion-MNIST KD run with RandomFlip, DropPath 0.1, mixup and two
dataloader workers is preempted after epoch 1 (epoch checkpoint) or in the middle of epoch 2
(iteration checkpoint), resumed by a new runner, and ends with the uninterrupted run's
parameters bit for bit; without the hook the same resume ends elsewhere. The same holds for
Cross-Architecture KD, whose multi-view generator transforms half of each batch and whose
discriminator steps every other iteration. Runs: 128 training images, batch 32, 2 epochs
(8 iterations), a random teacher."""
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

import mmkd  # noqa: F401
from mmkd.datasets import EpochIndexSampler, SeededDataset
from mmkd.engine import make_resume_reproducible
from mmkd.engine.hooks.reproducible_resume_hook import iteration_seed, rng_state, set_rng_state
from mmkd.registry import HOOKS
from conftest import FMNIST, runner_from_cfg

pytestmark = [
    pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                       reason='Fashion-MNIST not prepared (tools/setup_env.sh)'),
    pytest.mark.filterwarnings('ignore:teacher_ckpt=None'),
]
KD = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'
CAKD = 'configs/cakd/resnet-small_vit-small_1xb128_fmnist.py'
# mixup + cutmix per group of 16, global batches of 32 (GlobalBatchSampler, seeded preprocessor)
MIXUP = 'configs/kd/vit-small_resnet-small_1xb128_fmnist_mixup.py'


class Preempted(Exception):
    pass


@HOOKS.register_module(force=True)
class PreemptAt(Hook):
    """Stops the run like a preemption, once the checkpoint of that point is written."""
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW)

    def __init__(self, epoch=None, iteration=None):
        self.epoch, self.iteration = epoch, iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == self.iteration:
            raise Preempted

    def after_train_epoch(self, runner):
        if runner.epoch == self.epoch:
            raise Preempted


def _cfg(work_dir, reproducible=True, checkpoint_every_iters=None, preempt=None,
         resume_from=None, config=KD):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.model.teacher_ckpt = None
    if config in (KD, MIXUP):
        if config == KD:
            cfg.model.data_preprocessor = dict(**cfg.data_preprocessor, batch_augments=dict(
                augments=[dict(type='Mixup', alpha=0.8)]))
        student = Config.fromfile(cfg.model.student).model
        student.backbone.drop_path_rate = 0.1
        cfg.model.student = student
    else:  # the multi-view generator on, the discriminator's steps at alternate iterations
        assert cfg.model.multi_view.prob == 0.5
        cfg.model.d_interval = 2
        cfg.model.noisy_eval = None
        cfg.val_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.train_dataloader.update(batch_size=32, num_workers=2, persistent_workers=True)
    data = cfg.train_dataloader.dataset
    if config == MIXUP:
        cfg.train_dataloader.batch_sampler.update(global_batch_size=32, mix_group=16)
        data = data.dataset
    data.indices = 128
    assert data.pipeline[0].type == 'RandomFlip'
    cfg.val_dataloader.update(batch_size=64, num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.indices = 64
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg.randomness = dict(seed=3)
    cfg.log_level = 'WARNING'
    cfg.default_hooks.pop('teacher_check', None)  # a random teacher is the point here
    if checkpoint_every_iters:
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                            interval=checkpoint_every_iters)
    cfg.custom_hooks = [dict(type='PreemptAt', **preempt)] if preempt else []
    if resume_from:
        cfg.resume, cfg.load_from = True, osp.join(str(work_dir), resume_from)
    return make_resume_reproducible(cfg) if reproducible else cfg


def _train(cfg):
    """What the run learnt: the student's and the distillation losses' (projectors,
    discriminator) parameters and buffers."""
    runner = runner_from_cfg(cfg)
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()
            if not k.startswith('teacher.')}


def _preempted_then_resumed(work_dir, preempt, checkpoint, **kwargs):
    with pytest.raises(Preempted):
        _train(_cfg(work_dir, preempt=preempt, **kwargs))
    assert osp.isfile(osp.join(str(work_dir), checkpoint))
    return _train(_cfg(work_dir, resume_from=checkpoint, **kwargs))


def _different(a, b):
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    return _train(_cfg(tmp_path_factory.mktemp('straight')))


@pytest.mark.slow
def test_resume_after_an_epoch_is_bit_identical(straight, tmp_path):
    resumed = _preempted_then_resumed(tmp_path, dict(epoch=1), 'epoch_1.pth')
    assert _different(straight, resumed) == []


@pytest.mark.slow
def test_resume_in_the_middle_of_an_epoch_is_bit_identical(straight, tmp_path):
    # iteration 6 of 8: 2 of epoch 2's 4 batches trained before the checkpoint
    resumed = _preempted_then_resumed(tmp_path, dict(iteration=6), 'iter_6.pth',
                                      checkpoint_every_iters=2)
    assert _different(straight, resumed) == []


@pytest.mark.slow
def test_cross_architecture_kd_resumes_bit_identical_in_the_middle_of_an_epoch(tmp_path):
    straight = _train(_cfg(tmp_path / 'straight', config=CAKD))
    assert any(k.startswith('distill_losses.') for k in straight)  # projectors, discriminator
    resumed = _preempted_then_resumed(tmp_path / 'halves', dict(iteration=5), 'iter_5.pth',
                                      checkpoint_every_iters=5, config=CAKD)
    assert _different(straight, resumed) == []


@pytest.mark.slow
def test_global_batches_with_mixup_and_cutmix_resume_bit_identical_in_the_middle_of_an_epoch(
        tmp_path):
    straight = _train(_cfg(tmp_path / 'straight', config=MIXUP))
    resumed = _preempted_then_resumed(tmp_path / 'halves', dict(iteration=6), 'iter_6.pth',
                                      checkpoint_every_iters=2, config=MIXUP)
    assert _different(straight, resumed) == []


@pytest.mark.slow
def test_without_the_hook_the_resumed_run_ends_elsewhere(tmp_path):
    straight = _train(_cfg(tmp_path / 'straight', reproducible=False))
    resumed = _preempted_then_resumed(tmp_path / 'halves', dict(epoch=1), 'epoch_1.pth',
                                      reproducible=False)
    assert _different(straight, resumed)  # what the hook is for: the control can fail


def test_config_is_set_up_and_checked():
    cfg = _cfg('unused')
    assert cfg.train_dataloader.dataset.type == 'mmkd.SeededDataset'
    assert cfg.train_dataloader.dataset.seed == 3
    assert cfg.train_dataloader.sampler.type == 'mmkd.EpochIndexSampler'
    assert [h['type'] for h in cfg.custom_hooks].count('mmkd.ReproducibleResumeHook') == 1
    make_resume_reproducible(cfg)  # applying it twice changes nothing
    assert [h['type'] for h in cfg.custom_hooks].count('mmkd.ReproducibleResumeHook') == 1
    assert cfg.train_dataloader.dataset.dataset.type == 'FashionMNIST'
    plain = _cfg('unused', reproducible=False)
    plain.randomness.seed = None
    with pytest.raises(ValueError, match='needs a fixed seed: set randomness.seed'):
        make_resume_reproducible(plain)


@pytest.mark.slow
def test_hook_refuses_a_dataloader_it_cannot_replay(tmp_path):
    cfg = _cfg(tmp_path, reproducible=False)
    cfg.custom_hooks = [dict(type='mmkd.ReproducibleResumeHook')]
    runner = runner_from_cfg(cfg)
    with pytest.raises(ValueError, match=r'its sampler is a DefaultSampler, not an '
                                         r'EpochIndexSampler.*its dataset is a FashionMNIST, '
                                         r'not a SeededDataset'):
        runner.train()


def test_per_sample_seeds_and_generator_state_round_trip():
    ds = SeededDataset(dict(type='FashionMNIST', data_root=FMNIST, split='train', indices=8,
                            pipeline=[dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                                      dict(type='PackInputs')]), seed=5)
    # the same (epoch, index) gives the same flip whatever the global generators hold
    a = ds[(1, 3)]['inputs']
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    assert torch.equal(a, ds[(1, 3)]['inputs'])
    flips = {bool(ds[(e, 3)]['data_samples'].flip) for e in range(12)}
    assert flips == {True, False}  # other epochs, other draws
    assert iteration_seed(3, 7) == iteration_seed(3, 7) != iteration_seed(3, 8)
    assert iteration_seed(3, 7, rank=1) != iteration_seed(3, 7)
    state = rng_state()
    draws = random.random(), np.random.rand(), torch.rand(1)
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1)) == draws
    # the state survives a weights_only checkpoint load
    import io
    buf = io.BytesIO()
    torch.save(dict(meta=dict(rng_state=state)), buf)
    buf.seek(0)
    set_rng_state(torch.load(buf, weights_only=True)['meta']['rng_state'])
    assert random.random() == draws[0]


def test_sampler_skips_only_the_resumed_epoch():
    sampler = EpochIndexSampler(dict(type='DefaultSampler', shuffle=True), dataset=list(range(10)),
                                seed=0)
    sampler.set_epoch(1)
    whole = list(sampler)
    sampler.skip(1, 4)
    sampler.set_epoch(1)  # as DistSamplerSeedHook does when the resumed epoch starts
    assert len(sampler) == 6 and list(sampler) == whole[4:]
    sampler.set_epoch(2)
    assert len(sampler) == 10 and [e for e, _ in sampler] == [2] * 10
    with pytest.raises(ValueError, match='an epoch has 10 samples'):
        sampler.skip(2, 11)
