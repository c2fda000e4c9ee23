"""Distil for real on Fashion-MNIST, on a CPU, in minutes, and see whether it helps.

    python tools/quickstart.py                      # the default budget (docs/benchmarks.md)
    python tools/quickstart.py --data-root DIR      # any MNIST-format data set
    python tools/quickstart.py --seeds 3            # tighter error bars
    python tools/quickstart.py --retrain-teachers

A preset of the results benchmark (tools/benchmark/results.py) with fewer rows and a shorter
budget: it trains a small CNN teacher and a small ViT teacher (cached in work_dirs/teachers,
shared with the benchmark, and reused), then the small ViT student without distillation and
with CSKD (CNN teacher), and the small CNN student without and with Cross-Architecture KD (ViT
teacher), every run through tools/train.py and a config in configs/results/, two at a time.
Its runs are the first two seeds of the results table's (same configs, budget and teachers),
which reuses them. The rows are chosen for the time: one row needs the ViT teacher, whose
training is the first run's critical path (docs/benchmarks.md); the table has every method.
It prints progress (run, epoch, time left) and writes results.md (test top-1, mean ± std over
seeds, gain over the baseline, Welch's t-test), results.json and curves.png in the work dir.
"""
import argparse
import os.path as osp
from dataclasses import replace

from mmkd.benchmark import ROOT, add_arguments, run_table
from mmkd.benchmark.rows import BUDGET as RESULTS_BUDGET
from mmkd.benchmark.rows import ROWS, TEACHERS

QUICK_ROWS = ('vit_baseline', 'vit_cskd', 'cnn_baseline', 'cnn_cakd')
# the table's budget with 2 seeds, so that the table reuses these runs
BUDGET = replace(RESULTS_BUDGET, seeds=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p, BUDGET, osp.join(ROOT, 'work_dirs', 'results'))
    args = p.parse_args()
    run_table(args, TEACHERS, [r for r in ROWS if r.key in QUICK_ROWS])


if __name__ == '__main__':
    main()
