"""The results table: every method against its student's baseline, 3 seeds, on real data.

    python tools/benchmark/results.py                        # Fashion-MNIST, the full table
    python tools/benchmark/results.py --extras               # and the supplementary rows
    python tools/benchmark/results.py --data-root DIR        # any MNIST-format data set
    python tools/benchmark/results.py --only vit_baseline vit_kd --seeds 3

Trains the two teachers (cached in work_dirs/teachers, shared with tools/quickstart.py, and
reused), then each row's student over seeds (the supplementary rows, probes kept beside the
table, only with ``--extras`` or ``--only``), every run through tools/train.py and a config in
configs/results/, two processes at a time; a finished run of the same command is reused, so an
interrupted table continues where it stopped. Writes results.md, results.json and curves.png in
the work dir (``--json`` also writes the JSON elsewhere, e.g. docs/results/fmnist.json). The
regime, the same for every method, and the measured table: docs/benchmarks.md.
"""
import argparse
import os.path as osp

from mmkd.benchmark import ROOT, add_arguments, run_table
from mmkd.benchmark.rows import BUDGET, ROWS, TEACHERS


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p, BUDGET, osp.join(ROOT, 'work_dirs', 'results'))
    p.add_argument('--json', help='also write the JSON here (docs/results/fmnist.json)')
    args = p.parse_args()
    run_table(args, TEACHERS, ROWS, json_out=args.json)


if __name__ == '__main__':
    main()
