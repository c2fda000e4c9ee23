"""Does distillation help downstream? The composed Fashion-MNIST benchmark (docs/downstream.md).

    python tools/benchmark/downstream.py                                  # seg rows + random rows
    python tools/benchmark/downstream.py --backbones random \\
        vit_baseline=work_dirs/results/vit_baseline_seed0/epoch_3.pth \\
        vit_kd=work_dirs/students/vit_kd_backbone.pth                       # + transfer rows
    python tools/benchmark/downstream.py --only seg --seeds 3 --iters 1000

Segmentation distillation: trains the DeepLabV3+ teacher, then the student alone and with
TaT-seg over --seeds. Backbone transfer: Mask R-CNN and UPerNet with each --backbones entry as
backbone (NAME=PATH: a file from extract_student.py --backbone, a classifier checkpoint or a
distillation checkpoint of a results-table student; 'random': random init of the arch(s)).
Every run is a tools/train.py process of a config in configs/downstream/composed_fmnist/,
--jobs at a time; a finished run of the same command is reused. Writes downstream.md and
downstream.json in --work-dir. The composed set is made in --data-root on first use.
"""
import argparse
import os.path as osp
import sys

from mmkd.benchmark import ROOT
from mmkd.benchmark.downstream import (DEFAULT_DATA_ROOT, DEFAULT_ITERS, RANDOM, Budget,
                                       check_backbone, parse_backbones, run_benchmark)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                   help='the composed set (made there on first use; default %(default)s)')
    p.add_argument('--train-images', type=int, default=2000,
                   help='train canvases of the set (default %(default)s)')
    p.add_argument('--val-images', type=int, default=500,
                   help='val canvases of the set (default %(default)s)')
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'downstream'))
    p.add_argument('--seeds', type=int, default=2,
                   help='seeds of each segmentation student row (default %(default)s)')
    p.add_argument('--transfer-seeds', type=int, default=1,
                   help='seeds of each backbone-transfer run (default %(default)s)')
    p.add_argument('--iters', type=int, default=DEFAULT_ITERS,
                   help='training iterations per run, rounded to whole epochs of the train '
                   'canvases at batch 8 (default %(default)s: 6 epochs of 2000)')
    p.add_argument('--teacher-iters', type=int,
                   help='iterations of the segmentation teacher (default: --iters)')
    p.add_argument('--backbones', nargs='+', default=[RANDOM], metavar='NAME=PATH|random',
                   help="transfer rows: checkpoints of the results table's students, and "
                   f"'{RANDOM}' for random init (default: {RANDOM}, both archs)")
    p.add_argument('--only', nargs='+', choices=['seg', 'transfer'],
                   default=['seg', 'transfer'], help='parts to run (default: both)')
    p.add_argument('--jobs', type=int, default=2, help='training processes at once')
    p.add_argument('--threads', type=int,
                   help='torch threads per process (default: the cores shared out)')
    p.add_argument('--rerun', action='store_true', help='train every run again')
    p.add_argument('--retrain-teacher', action='store_true',
                   help='train the segmentation teacher again')
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        backbones = parse_backbones(args.backbones) if 'transfer' in args.only else []
        for b in backbones:
            if not b.is_random:
                check_backbone(b)  # a mismatch is an error now, naming the keys
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        sys.exit(f'downstream.py: error: {e}')
    budget = Budget(args.iters, args.teacher_iters or args.iters, args.train_images,
                    args.val_images, args.seeds, args.transfer_seeds)
    run_benchmark(budget, args.data_root, args.work_dir, backbones, args.only,
                  slots=args.jobs, threads=args.threads, rerun=args.rerun,
                  retrain_teacher=args.retrain_teacher)


if __name__ == '__main__':
    main()
