"""Make a teacher-logit cache (docs/teacher_cache.md): run the teacher of a distillation config
once per epoch over its training set, each sample under its own augmentation seed, and store the
top-k logits. Train then with a config that reads the cache, e.g.
configs/kd/vit-small_resnet-small_1xb128_fmnist_cached.py.

    python tools/cache_teacher_logits.py configs/kd/vit-small_resnet-small_1xb128_fmnist.py \\
        --epochs 5 --topk 10

A config whose training batches come from ``GlobalBatchSampler`` (mixup/cutmix with
``SeededClsDataPreprocessor``, e.g. the DeiT recipe) gets a cache of whole mixed batches, which
every process of a job writes its share of, and which a stopped writer continues:

    torchrun --nproc_per_node 8 tools/cache_teacher_logits.py \\
        configs/deit/deit-t-distilled_regnety-16gf_8xb64_in1k.py --topk 10 --launcher pytorch
    python tools/cache_teacher_logits.py CONFIG --verify 8   # re-run the teacher on 8 batches
"""
import argparse
import os
import os.path as osp
import sys
from types import SimpleNamespace

import torch
from mmengine.config import DictAction
from mmengine.dist import get_dist_info
from mmengine.registry import FUNCTIONS, init_default_scope
from mmengine.utils import import_modules_from_strings

import mmkd  # noqa: F401  (registers mmkd types, makes torch.load safe for MMEngine checkpoints)
from mmkd.datasets import (BatchLogitsCache, cache_teacher_logits, verify_batch_cache,
                           write_batch_cache)
from mmkd.datasets.global_batch_sampler import samples_global_batches
from mmkd.models.builder import resolve_checkpoint
from mmkd.registry import MODELS
from mmkd.utils import load_run_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Cache a distillation teacher\'s logits')
    parser.add_argument('config', help='distillation config with the online teacher')
    parser.add_argument('--epochs', type=int,
                        help='epochs to cache (default: train_cfg.max_epochs)')
    parser.add_argument('--topk', type=int,
                        help='logits kept per sample (default: all classes, exact)')
    parser.add_argument('--out', help='cache directory (default: '
                        'work_dirs/<config name>/teacher_logits)')
    parser.add_argument('--batch-size', type=int,
                        help='images per teacher batch (default 256; a batch cache: the '
                        'global batch, or a multiple of mix_group that divides it)')
    parser.add_argument('--seed', type=int,
                        help='base seed of the per-sample augmentation seeds (default 0; a '
                        'batch cache uses the config\'s randomness.seed)')
    parser.add_argument('--fp16', action='store_true',
                        help='store the logits in float16 (half the disk, not exact)')
    parser.add_argument('--num-workers', type=int,
                        help='dataloader workers (default: train_dataloader.num_workers)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='pytorch: one writer per torchrun process (batch caches)')
    parser.add_argument('--verify', type=int, metavar='N',
                        help='do not write: re-run the teacher on N random global batches of '
                        'the (complete) batch cache and report the largest differences')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.teacher_ckpt=path.pth')
    return parser.parse_args(argv)


def build_collate_fn(loader_cfg):
    collate = dict(loader_cfg.get('collate_fn', None) or dict(type='pseudo_collate'))
    fn = collate.pop('type')
    fn = FUNCTIONS.get(fn) if isinstance(fn, str) else fn
    return (lambda batch: fn(batch, **collate)) if collate else fn


def main(argv=None):
    args = parse_args(argv)
    cfg = load_run_config(SimpleNamespace(config=args.config, launcher='none',
                                          cfg_options=args.cfg_options, work_dir=None))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmkd'))

    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # as MMEngine's Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if model_cfg.get('logit_cache') or model_cfg.get('teacher') is None:
        sys.exit(f'{args.config} reads a logit cache (logit_cache=True / teacher=None): pass '
                 'the distillation config with the online teacher, the one it inherits from')
    if args.launcher == 'pytorch' and args.device.startswith('cuda'):
        args.device = f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    distiller = MODELS.build(model_cfg).to(args.device)

    loader_cfg = cfg.train_dataloader
    epochs = args.epochs or cfg.train_cfg.get('max_epochs')
    if not epochs:
        sys.exit('--epochs is needed (the config has no train_cfg.max_epochs)')
    out = args.out or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0],
                               'teacher_logits')
    num_workers = loader_cfg.get('num_workers', 0) if args.num_workers is None \
        else args.num_workers
    # the local file a URL / 'pretrained' teacher_ckpt was cached to, whose hash is recorded
    teacher_ckpt = model_cfg.get('teacher_ckpt') and resolve_checkpoint(
        model_cfg.teacher_ckpt, 'teacher', model_cfg.get('teacher'))
    meta = dict(config=args.config, config_file=osp.abspath(cfg.filename),
                teacher=str(model_cfg.get('teacher')), cfg_options=args.cfg_options and
                {k: str(v) for k, v in args.cfg_options.items()})
    if samples_global_batches(loader_cfg):
        return batch_cache(args, cfg, distiller, loader_cfg, loader_cfg.batch_sampler, epochs,
                           out, num_workers, teacher_ckpt, meta)
    if args.launcher != 'none' or args.verify:
        sys.exit(f'--launcher/--verify: for batch caches (train_dataloader.batch_sampler='
                 f"GlobalBatchSampler); {args.config} samples images one by one")
    cache = cache_teacher_logits(
        distiller, loader_cfg.dataset, out, epochs=epochs, topk=args.topk,
        batch_size=args.batch_size or 256, base_seed=args.seed or 0, fp16=args.fp16,
        num_workers=num_workers, collate_fn=build_collate_fn(loader_cfg),
        teacher_ckpt=teacher_ckpt, meta=meta)
    report(out, cache, f'{cache.epochs} epoch(s) x {cache.num_samples} samples')


def report(out, cache, what):
    size = cache.nbytes()
    print(f'teacher-logit cache: {out}: {what}, top-{cache.topk} of {cache.num_classes} '
          f'logits, {size / 2**20:.2f} MiB ({size} bytes)')


def batch_cache(args, cfg, distiller, loader_cfg, batches, epochs, out, num_workers,
                teacher_ckpt, meta):
    """The teacher's logits of every mixed global batch, written by every process."""
    seed = (cfg.get('randomness') or {}).get('seed')
    if seed is None:
        sys.exit(f'{args.config}: GlobalBatchSampler needs randomness.seed (the batches and '
                 'their mixing are a function of it)')
    if args.seed is not None and args.seed != seed:
        sys.exit(f'--seed {args.seed}: a batch cache uses the config\'s randomness.seed ({seed})')
    common = dict(batch_size=args.batch_size,
                  num_workers=num_workers, collate_fn=build_collate_fn(loader_cfg))
    if args.verify:
        result = verify_batch_cache(distiller, loader_cfg.dataset, BatchLogitsCache(out),
                                    num_batches=args.verify, **common)
        print(f'verified {len(result["batches"])} global batches of {out} (epoch, batch): '
              f'{result["batches"]}: largest difference of a stored logit '
              f'{result["max_abs_logit"]:.3g}, of a log-sum-exp {result["max_abs_lse"]:.3g}')
        return
    rank, world_size, barrier = 0, 1, (lambda: None)
    if args.launcher == 'pytorch':
        # not mmengine's init_dist: it selects a CUDA device even for CPU (gloo) writers
        cuda = args.device.startswith('cuda')
        if cuda:
            torch.cuda.set_device(args.device)
        torch.distributed.init_process_group('nccl' if cuda else 'gloo')
        rank, world_size = get_dist_info()
        barrier = torch.distributed.barrier
    cache = write_batch_cache(
        distiller, loader_cfg.dataset, out, epochs=epochs, seed=seed,
        global_batch_size=batches['global_batch_size'], mix_group=batches['mix_group'],
        topk=args.topk, fp16=args.fp16, rank=rank, world_size=world_size, barrier=barrier,
        teacher_ckpt=teacher_ckpt, meta=meta, **common)
    if rank == 0:
        report(out, cache, f'{cache.epochs} epoch(s) x {cache.num_batches} global batches of '
               f'{cache.global_batch_size}, written by {world_size} process(es)')

if __name__ == '__main__':
    main()
