"""Resume that continues exactly as the uninterrupted run would have gone on, with the real
recipe's randomness: random flips and crops in the data pipeline, DropPath, mixup/cutmix and
Cross-Architecture KD's multi-view generator.

Two kinds of random numbers are drawn in a training run, and each is made a function of where
the run is rather than of what happened before:

- **in the data pipeline** (dataloader workers or the main process): every sample is augmented
  under its own seed, a function of (seed, epoch, index) (:class:`~mmkd.datasets.SeededDataset`
  iterated by :class:`~mmkd.datasets.EpochIndexSampler`, the mechanism the teacher-logit cache
  replays samples with), so the worker count, persistent workers and a resume change nothing;
  with :class:`~mmkd.datasets.GlobalBatchSampler` the batches themselves and their mixup/cutmix
  draws are a function of (seed, epoch, batch) as well, and a resume skips whole batches;
- **in the main process during a step** (DropPath, mixup/cutmix, the multi-view generator):
  the global generators (Python, NumPy, torch CPU and CUDA) are seeded before every iteration
  from (seed, iteration, rank). Whatever else draws between two steps (a validation epoch, a
  dataloader starting its workers) cannot shift the next step's numbers, which restoring a
  saved generator state alone would not guarantee: the uninterrupted run validates after the
  epoch it was checkpointed in, the resumed one does not.

The generator states are also saved in every checkpoint and restored on resume, and a run
resumed from an iteration checkpoint in the middle of an epoch goes on with the samples that
epoch had not reached (the epoch-based loop would otherwise start the epoch again).
"""
import random
from typing import List

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from mmkd.datasets import EpochIndexSampler, GlobalBatchSampler, SeededDataset, seed_all
from mmkd.datasets.global_batch_sampler import samples_global_batches
from mmkd.registry import HOOKS

#: first element of the SeedSequence spawn key of the per-iteration streams; the per-sample
#: seeds use one-element keys (epoch, ), so the two never share a stream
ITERATION_STREAM = 0x5EED


def iteration_seed(seed: int, iteration: int, rank: int = 0) -> int:
    """The 63-bit seed of the global generators for iteration ``iteration`` on ``rank``."""
    state = np.random.SeedSequence(int(seed), spawn_key=(ITERATION_STREAM, int(iteration),
                                                         int(rank))).generate_state(
        1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def rng_state() -> dict:
    """The global generators' states, in types a ``weights_only`` checkpoint load accepts."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(python=[version, list(mt), gauss],
                 numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                            has_gauss=int(has_gauss), cached=float(cached)),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, mt, gauss = state['python']
    random.setstate((version, tuple(mt), gauss))
    n = state['numpy']
    np.random.set_state(('MT19937', n['keys'].numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['cached']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class ReproducibleResumeHook(Hook):
    """Makes a resumed run identical to the uninterrupted one (see the module's docstring).

    The training dataloader must be seeded per sample: ``dataset=dict(type='SeededDataset',
    dataset=..., seed=<randomness.seed>)`` and ``sampler=dict(type='EpochIndexSampler',
    sampler=...)``; :func:`make_resume_reproducible` (``tools/train.py --reproducible``) sets
    both and adds this hook. Checked when the run starts.
    """
    priority = 'VERY_HIGH'  # the generators are seeded before any other hook's step code

    def before_run(self, runner) -> None:
        loader = runner.train_dataloader
        problems = []
        if isinstance(loader.batch_sampler, GlobalBatchSampler):
            # every batch's samples, seeds and mixing come from (seed, epoch, batch)
            if not isinstance(loader.dataset, SeededDataset):
                problems.append(f'its dataset is a {type(loader.dataset).__name__}, not a '
                                'SeededDataset (which runs each sample under its seed)')
        else:
            if not isinstance(loader.sampler, EpochIndexSampler):
                problems.append(f'its sampler is a {type(loader.sampler).__name__}, not an '
                                'EpochIndexSampler (which tells each sample its epoch)')
            if not isinstance(loader.dataset, SeededDataset) or loader.dataset.seed is None:
                problems.append(f'its dataset is a {type(loader.dataset).__name__}, not a '
                                'SeededDataset with a seed (which augments each sample under '
                                'a seed of its own)')
            elif loader.dataset.seed != runner.seed:
                problems.append(f'its SeededDataset has seed {loader.dataset.seed} but the '
                                f"run's randomness.seed is {runner.seed}")
        if problems:
            raise ValueError('ReproducibleResumeHook: the training dataloader cannot be '
                             'replayed: ' + '; '.join(problems) + '. make_resume_reproducible'
                             '(cfg) (tools/train.py --reproducible) sets it up.')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed_all(iteration_seed(runner.seed, runner.iter, get_rank()))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['rng_state'] = rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner.cfg.get('resume', False):
            return  # loading weights to start a new run (load_from): nothing to continue
        meta = checkpoint.get('meta', {})
        loader = runner.train_dataloader
        batches = loader.batch_sampler if isinstance(loader.batch_sampler,
                                                     GlobalBatchSampler) else None
        seed = batches.seed if batches else loader.dataset.seed
        if meta.get('seed') is not None and meta['seed'] != seed:
            raise ValueError(f"ReproducibleResumeHook: the checkpoint's run had seed "
                             f"{meta['seed']}, this one augments its samples with seed "
                             f'{seed}: set randomness.seed={meta["seed"]} to continue that run')
        if 'rng_state' in meta:
            set_rng_state(meta['rng_state'])
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            loader = loop.dataloader
            done = meta['iter'] - meta['epoch'] * len(loader)  # batches of the current epoch
            if done > 0:
                if batches:
                    batches.skip(meta['epoch'], done)
                else:
                    loader.sampler.skip(meta['epoch'], done * loader.batch_size)
                runner.logger.info(f'resumed in the middle of epoch {meta["epoch"] + 1}: its '
                                   f'first {done} batches were trained before the checkpoint')
        # the iteration-based loop skips the batches it has trained itself


def make_resume_reproducible(cfg: Config) -> Config:
    """Seed the training data per sample and add :class:`ReproducibleResumeHook`, for any
    config with a fixed ``randomness.seed``. Returns ``cfg``, changed in place."""
    seed = (cfg.get('randomness') or {}).get('seed')
    if seed is None:
        raise ValueError('reproducible resume needs a fixed seed: set randomness.seed (e.g. '
                         '--cfg-options randomness.seed=0); a run without one draws a new '
                         'seed each time it starts')
    loader = cfg.train_dataloader
    # global batches bring their seeds and the dataset is seeded already (checked at start)
    if not samples_global_batches(loader):
        if loader.dataset.get('type') not in ('SeededDataset', 'mmkd.SeededDataset'):
            loader.dataset = dict(type='mmkd.SeededDataset', dataset=loader.dataset, seed=seed)
        if loader.sampler.get('type') not in ('EpochIndexSampler', 'mmkd.EpochIndexSampler'):
            loader.sampler = dict(type='mmkd.EpochIndexSampler', sampler=loader.sampler)
    hooks: List[dict] = cfg.setdefault('custom_hooks', [])
    if not any(str(h.get('type', '')).endswith('ReproducibleResumeHook') for h in hooks):
        hooks.append(dict(type='mmkd.ReproducibleResumeHook'))
    return cfg
