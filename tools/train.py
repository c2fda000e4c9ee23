"""Train (or distil) with any OpenMMLab config: mmkd, mmpretrain, mmdet or mmseg."""
import argparse
import os

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

import mmkd  # noqa: F401  (registers mmkd types, makes torch.load safe for MMEngine checkpoints)
from mmkd.engine import make_resume_reproducible, use_atomic_checkpoints
from mmkd.utils import load_run_config, setup_cpu_distributed, teardown_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train or distil a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or the latest one in the work '
                        'dir when no path is given')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: float16 with a dynamic loss scale on '
                        'a GPU, bfloat16 autocast (AutocastOptimWrapper) without one')
    parser.add_argument('--reproducible', action='store_true',
                        help='a resumed run continues exactly as the uninterrupted one: each '
                        'sample augmented under its own seed, the generators seeded every '
                        'iteration (ReproducibleResumeHook; needs randomness.seed)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not validate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.teacher_ckpt=path.pth')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Apply the training-only options (the shared ones: :func:`load_run_config`)."""
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper not in ('OptimWrapper', 'AmpOptimWrapper', 'AutocastOptimWrapper'):
            raise ValueError(f'--amp needs an OptimWrapper/AmpOptimWrapper, got {optim_wrapper}')
        if optim_wrapper == 'OptimWrapper':
            if torch.cuda.is_available():
                cfg.optim_wrapper.type = 'AmpOptimWrapper'
                cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
            else:  # MMEngine's AmpOptimWrapper needs an accelerator
                cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
    if args.reproducible:
        make_resume_reproducible(cfg)
    return cfg


def main():
    args = parse_args()
    cfg = merge_args(load_run_config(args), args)
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    # complete-or-absent checkpoint files, and a resume that passes over damaged ones
    use_atomic_checkpoints(runner)
    try:
        runner.train()
    finally:
        teardown_distributed()


if __name__ == '__main__':
    main()
