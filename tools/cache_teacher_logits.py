"""Make a teacher-logit cache (docs/teacher_cache.md): run the teacher of a distillation config
once per epoch over its training set, each sample under its own augmentation seed, and store the
top-k logits with the seeds. Train then with a config that reads the cache, e.g.
configs/kd/vit-small_resnet-small_1xb128_fmnist_cached.py.

    python tools/cache_teacher_logits.py configs/kd/vit-small_resnet-small_1xb128_fmnist.py \\
        --epochs 5 --topk 10
"""
import argparse
import os.path as osp
import sys
from types import SimpleNamespace

import torch
from mmengine.config import DictAction
from mmengine.registry import FUNCTIONS, init_default_scope
from mmengine.utils import import_modules_from_strings

import mmkd  # noqa: F401  (registers mmkd types, makes torch.load safe for MMEngine checkpoints)
from mmkd.datasets import cache_teacher_logits
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
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0,
                        help='base seed of the per-sample augmentation seeds')
    parser.add_argument('--fp16', action='store_true',
                        help='store the logits in float16 (half the disk, not exact)')
    parser.add_argument('--num-workers', type=int,
                        help='dataloader workers (default: train_dataloader.num_workers)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
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
    distiller = MODELS.build(model_cfg).to(args.device)

    loader_cfg = cfg.train_dataloader
    epochs = args.epochs or cfg.train_cfg.get('max_epochs')
    if not epochs:
        sys.exit('--epochs is needed (the config has no train_cfg.max_epochs)')
    out = args.out or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0],
                               'teacher_logits')
    num_workers = loader_cfg.get('num_workers', 0) if args.num_workers is None \
        else args.num_workers
    cache = cache_teacher_logits(
        distiller, loader_cfg.dataset, out, epochs=epochs, topk=args.topk,
        batch_size=args.batch_size, base_seed=args.seed, fp16=args.fp16,
        num_workers=num_workers, collate_fn=build_collate_fn(loader_cfg),
        # the local file a URL / 'pretrained' teacher_ckpt was cached to, whose hash is recorded
        teacher_ckpt=model_cfg.get('teacher_ckpt') and resolve_checkpoint(
            model_cfg.teacher_ckpt, 'teacher', model_cfg.get('teacher')),
        meta=dict(config=args.config, config_file=osp.abspath(cfg.filename),
                  teacher=str(model_cfg.get('teacher')), cfg_options=args.cfg_options and
                  {k: str(v) for k, v in args.cfg_options.items()}))
    size = cache.nbytes()
    print(f'teacher-logit cache: {out}: {cache.epochs} epoch(s) x {cache.num_samples} samples, '
          f'top-{cache.topk} of {cache.num_classes} logits, {size / 2**20:.2f} MiB '
          f'({size} bytes)')


if __name__ == '__main__':
    main()
