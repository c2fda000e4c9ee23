"""Distil for real on Fashion-MNIST, on a CPU, in minutes, and see whether it helps.

    python tools/quickstart.py                      # the default budget (docs/benchmarks.md)
    python tools/quickstart.py --data-root DIR      # any MNIST-format data set
    python tools/quickstart.py --seeds 3            # tighter error bars
    python tools/quickstart.py --retrain-teachers

A preset of the results benchmark (tools/benchmark/results.py) with fewer rows and seeds and
one short teacher: it trains a small ViT teacher for 5 epochs (cached in work_dirs/teachers,
shared with the benchmark's tools, and reused), then, from it, the small ViT student without
distillation and with ViTKD + NKD (ViT -> ViT), and the small CNN student without and with
Cross-Architecture KD (ViT -> CNN), every run through tools/train.py and a config in
configs/results/, two at a time, in the table's regime (every training image, 10 % of them
labelled, every batch 64 labelled and 64 unlabelled, the baselines' too; docs/benchmarks.md).
The rows are chosen for the time and for what they show: both
students and both directions from the one teacher whose training fits the first run (the
table's 15-epoch ViT teacher alone takes ~30 minutes); the table has every method. Its teacher
is not the table's, so its runs are its own (work_dirs/quickstart).
It prints progress (run, epoch, time left) and writes results.md (test top-1, mean ± std over
seeds, gain over the baseline, Welch's t-test), results.json and curves.png in the work dir.
"""
import argparse
import os.path as osp
from dataclasses import replace

from mmkd.benchmark import ROOT, add_arguments, run_table
from mmkd.benchmark.rows import BUDGET as RESULTS_BUDGET
from mmkd.benchmark.rows import CFG, ROWS
from mmkd.benchmark.table import Teacher

QUICK_ROWS = ('vit_baseline', 'vit_vitkd_nkd', 'cnn_baseline', 'cnn_cakd')
# the table's ViT teacher, trained 5 of its 15 epochs: the first run stays within 30 minutes
TEACHER = Teacher('teacher_vit_5e', 'ViT teacher', f'{CFG}/vit-p7-w128_1xb128_fmnist.py', epochs=5)
# the table's regime and student budget, 2 seeds
BUDGET = replace(RESULTS_BUDGET, seeds=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p, BUDGET, osp.join(ROOT, 'work_dirs', 'quickstart'))
    args = p.parse_args()
    rows = [replace(r, teacher=TEACHER.key) if r.teacher else r
            for r in ROWS if r.key in QUICK_ROWS]
    run_table(args, [TEACHER], rows)


if __name__ == '__main__':
    main()
