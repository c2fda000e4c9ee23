"""Loss and accuracy curves of one or more runs (MMEngine scalar logs) in one PNG.

    python tools/analysis/plot_curves.py work_dirs/vit_alone work_dirs/vit_kd \
        [--keys loss loss_kd accuracy/top1] [--out curves.png]

Each argument is a work dir (every <timestamp>/vis_data/scalars.json in it, oldest first), a
run dir or a scalars.json file. See docs/analysis.md.
"""
import argparse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dirs', nargs='+', help='work dirs, run dirs or scalars.json files')
    p.add_argument('--keys', nargs='+', default=None,
                   help='keys to plot (default: every loss, then every metric)')
    p.add_argument('--labels', nargs='+', help='legend names (default: the work dir names)')
    p.add_argument('--smooth', type=int, default=1,
                   help='moving average window over logged training points')
    p.add_argument('--out', default='work_dirs/analysis/curves.png')
    p.add_argument('--dpi', type=int, default=100)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.utils import track_iter_progress

    from mmkd.analysis.curves import Run, plot_curves, unique_labels
    if args.labels and len(args.labels) != len(args.work_dirs):
        raise SystemExit(f'{len(args.labels)} --labels for {len(args.work_dirs)} work dirs')
    labels = args.labels or unique_labels(args.work_dirs)
    runs = [Run(path, label) for path, label in
            zip(track_iter_progress(list(args.work_dirs)), labels)]
    for run in runs:
        print(f'{run.label}: {len(run.train)} training and {len(run.val)} validation records '
              f'from {len(run.files)} file(s); keys: {run.keys()}')
    keys = plot_curves(runs, args.out, args.keys, smooth_window=args.smooth, dpi=args.dpi)
    print(f'wrote {args.out}: {len(keys)} panel(s): {keys}')


if __name__ == '__main__':
    from mmkd.analysis.cli import run_cli
    run_cli(main, __file__)
