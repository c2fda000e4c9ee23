"""Distil for real on Fashion-MNIST, on a CPU, in minutes, and see whether it helps.

    python tools/quickstart.py                      # the default budget (docs/benchmarks.md)
    python tools/quickstart.py --data-root DIR      # any MNIST-format data set
    python tools/quickstart.py --seeds 3            # tighter error bars
    python tools/quickstart.py --retrain-teachers

A preset of the results benchmark (tools/benchmark/results.py) with fewer rows and seeds: it
trains a small CNN teacher (cached in work_dirs/teachers, shared with the benchmark, and reused),
then the small ViT student without distillation and with CSKD, and the small CNN student without
and with KD, every run through tools/train.py and a config in configs/results/, two at a time,
in the table's regime (every training image, 10 % of them labelled; docs/benchmarks.md). Its runs
are the first two seeds of the results table's (same configs, budget and teacher), which reuses
them. The rows are chosen for the time and for what they show: both students, a cross-
architecture method and the logit baseline, all from the one teacher whose training fits the
first run (the ViT teacher alone takes ~24 minutes); the table has every method.
It prints progress (run, epoch, time left) and writes results.md (test top-1, mean ± std over
seeds, gain over the baseline, Welch's t-test), results.json and curves.png in the work dir.
"""
import argparse
import os.path as osp
from dataclasses import replace

from mmkd.benchmark import ROOT, add_arguments, run_table
from mmkd.benchmark.rows import BUDGET as RESULTS_BUDGET
from mmkd.benchmark.rows import ROWS, TEACHERS

QUICK_ROWS = ('vit_baseline', 'vit_cskd', 'cnn_baseline', 'cnn_kd')
# the table's budget with 2 seeds, so that the table reuses these runs
BUDGET = replace(RESULTS_BUDGET, seeds=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p, BUDGET, osp.join(ROOT, 'work_dirs', 'results'))
    args = p.parse_args()
    run_table(args, TEACHERS, [r for r in ROWS if r.key in QUICK_ROWS])


if __name__ == '__main__':
    main()
