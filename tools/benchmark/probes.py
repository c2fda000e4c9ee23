"""Probe one row of the results table: one change to its config at a time, same seeds.

    python tools/benchmark/probes.py cnn_cakd --seeds 2 \\
        --probe 'mv_off:model.multi_view=None' \\
        --probe 'adv_off:model.distill_losses.loss_cakd.lambda_adv=0.0'

Each ``--probe NAME:KEY=VALUE[;KEY=VALUE...]`` is a row of its own (``--cfg-options`` on the
row's config); the row's baseline and the row itself run beside them in the results table's
regime and teachers (shared and cached as there). Writes results.md (the table, Welch's t-test
against the baseline), losses.md (the final task loss next to every distillation term),
results.json and curves.png in ``work_dirs/probes/<row>``.
"""
import argparse
import os.path as osp

from mmkd.benchmark import ROOT, add_arguments, run_table
from mmkd.benchmark.probes import losses_table, probe_rows
from mmkd.benchmark.rows import BUDGET, ROWS, TEACHERS


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('row', help='the row to probe (a key of mmkd/benchmark/rows.py)')
    p.add_argument('--probe', action='append', default=[], metavar='NAME:KEY=VALUE;...')
    add_arguments(p, BUDGET, '')
    args = p.parse_args()
    args.work_dir = args.work_dir or osp.join(ROOT, 'work_dirs', 'probes', args.row)
    rows = probe_rows(ROWS, args.row, args.probe)
    run_table(args, TEACHERS, rows)
    text = losses_table(rows, args.work_dir, args.seeds)
    with open(osp.join(args.work_dir, 'losses.md'), 'w') as f:
        f.write(text + '\n')
    print(text)


if __name__ == '__main__':
    main()
