"""Evaluate a checkpoint with any OpenMMLab config (the student, for distillation configs)."""
import argparse
import os

from mmengine.config import DictAction
from mmengine.runner import Runner

import mmkd  # noqa: F401
from mmkd.engine import use_atomic_checkpoints
from mmkd.utils import load_run_config, setup_cpu_distributed, teardown_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Test a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation results')
    parser.add_argument('--out', help='dump the metrics to this json/pkl file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = load_run_config(args)
    cfg.load_from = args.checkpoint
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    use_atomic_checkpoints(runner)  # a damaged CHECKPOINT is an error naming it
    try:
        metrics = runner.test()
    finally:
        teardown_distributed()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)


if __name__ == '__main__':
    main()
