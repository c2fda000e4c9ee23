"""Distil for real on Fashion-MNIST, on a CPU, in minutes, and see whether it helps.

    python tools/quickstart.py                 # default budget (14 min 18 s measured on 2 cores)
    python tools/quickstart.py --seeds 3       # more seeds, tighter error bars
    python tools/quickstart.py --retrain-teachers

1. trains a small CNN teacher and a small ViT teacher (cached in the work dir, reused);
2. trains the small ViT student without distillation, with KD, with CSKD (CNN teacher) and with
   ViTKD (ViT teacher), and the small CNN student without and with Cross-Architecture KD
   (ViT teacher), every one through tools/train.py and a config in configs/quickstart/;
3. writes results.md (test top-1, mean ± std over seeds) and curves.png into the work dir.
"""
import argparse
import json
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import time
from glob import glob

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG = osp.join(ROOT, 'configs', 'quickstart')

# name, config, teacher run it needs, architecture of the student, what it is
TEACHERS = [
    ('teacher_cnn', 'teacher_cnn.py', None, 'CNN', 'CNN teacher'),
    ('teacher_vit', 'teacher_vit.py', None, 'ViT', 'ViT teacher'),
]
STUDENTS = [
    ('vit_baseline', 'vit_baseline.py', None, 'ViT', 'no distillation'),
    ('vit_kd', 'vit_kd.py', 'teacher_cnn', 'ViT', 'KD'),
    ('vit_cskd', 'vit_cskd.py', 'teacher_cnn', 'ViT', 'CSKD'),
    ('vit_vitkd', 'vit_vitkd.py', 'teacher_vit', 'ViT', 'ViTKD'),
    ('cnn_baseline', 'cnn_baseline.py', None, 'CNN', 'no distillation'),
    ('cnn_cakd', 'cnn_cakd.py', 'teacher_vit', 'CNN', 'Cross-Architecture KD'),
]
PROGRESS = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\s*\[\s*(\d+)/(\d+)\]')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'quickstart'))
    p.add_argument('--seeds', type=int, default=2, help='seeds per student (default 2)')
    p.add_argument('--epochs', type=int, default=2, help='epochs per student run')
    p.add_argument('--train-size', type=int, default=6400,
                   help='training images (of 60000) per student epoch; the test split (10000) '
                   'is always whole unless --test-size is given')
    p.add_argument('--teacher-epochs', type=int, default=3)
    p.add_argument('--teacher-train-size', type=int, default=10000,
                   help='training images per teacher epoch: a teacher should know more than '
                   'its student')
    p.add_argument('--test-size', type=int, default=None)
    p.add_argument('--retrain-teachers', action='store_true')
    p.add_argument('--only', nargs='+', help='student runs to do (default: all)')
    return p.parse_args()


def run_options(args, epochs, seed, train_size):
    opts = [f'train_cfg.max_epochs={epochs}', f'randomness.seed={seed}',
            f'train_dataloader.dataset.indices={train_size}',
            'default_hooks.checkpoint.max_keep_ckpts=1', 'default_hooks.logger.interval=20',
            'train_dataloader.num_workers=1', 'val_dataloader.num_workers=1']
    if args.test_size:
        opts += [f'val_dataloader.dataset.indices={args.test_size}',
                 f'test_dataloader.dataset.indices={args.test_size}']
    return opts


def last_checkpoint(work_dir):
    ckpts = sorted(glob(osp.join(work_dir, 'epoch_*.pth')),
                   key=lambda p: int(re.findall(r'epoch_(\d+)', p)[0]))
    return ckpts[-1] if ckpts else None


def accuracy_curve(work_dir):
    runs = sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not runs:
        return []
    with open(runs[-1]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r['accuracy/top1'] for r in records if 'accuracy/top1' in r]


class Progress:
    """One line per event: which run, its epoch/iteration, and the time left overall.

    Time left = seconds per training image so far x training images still to go (runs differ
    in length: a teacher sees more images than a student)."""

    def __init__(self, planned_images):
        self.planned = list(planned_images)  # training images of every run, in order
        self.done, self.start = 0, time.time()

    def eta(self, frac_of_current=0.0):
        images_done = sum(self.planned[:self.done]) + frac_of_current * self.planned[self.done]
        if images_done <= 0:
            return '?'
        left = sum(self.planned[self.done:]) - frac_of_current * self.planned[self.done]
        seconds = (time.time() - self.start) / images_done * left
        return time.strftime('%M:%S', time.gmtime(seconds))

    def begin(self, label):
        self._run_start = time.time()
        self.label = label
        print(f'[{self.done + 1}/{len(self.planned)}] {label}: starting', flush=True)

    def update(self, epoch, it, n_iter, epochs):
        frac = ((epoch - 1) + it / n_iter) / epochs
        print(f'[{self.done + 1}/{len(self.planned)}] {self.label}: epoch {epoch}/{epochs} '
              f'iter {it}/{n_iter}  time left ~{self.eta(frac)}', flush=True)

    def end(self, result):
        self.done += 1
        print(f'[{self.done}/{len(self.planned)}] {self.label}: {result} '
              f'({time.time() - self._run_start:.0f} s)', flush=True)


def train(config, work_dir, options, progress, epochs):
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(CFG, config),
           '--work-dir', work_dir, '--cfg-options', *options]
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'quickstart_stdout.log'), 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        for line in proc.stdout:
            log.write(line)
            m = PROGRESS.search(line)
            if m:
                progress.update(int(m[1]), int(m[2]), int(m[3]), epochs)
        if proc.wait() != 0:
            raise SystemExit(f'quickstart: {config} failed; see {log.name}')


def write_results(args, results, teachers):
    """results: name -> list of final top-1 per seed; teachers: name -> top-1."""
    base = {arch: statistics.mean(results[f'{arch.lower()}_baseline'])
            for arch in ('ViT', 'CNN') if results.get(f'{arch.lower()}_baseline')}
    lines = ['| student | method | teacher | test top-1 (%) | Δ vs baseline |',
             '|---|---|---|---|---|']
    for name, _, teacher, arch, method in STUDENTS:
        accs = results.get(name)
        if not accs:
            continue
        mean = statistics.mean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        t = f'{dict((n, d) for n, _, _, _, d in TEACHERS)[teacher]} ({teachers[teacher]:.2f})' if teacher else '-'
        delta = '-' if name.endswith('baseline') or arch not in base else f'{mean - base[arch]:+.2f}'
        lines.append(f'| small {arch} | {method} | {t} | {mean:.2f} ± {std:.2f} | {delta} |')
    for name, _, _, arch, desc in TEACHERS:
        lines.append(f'| {desc} | (trained alone) | - | {teachers[name]:.2f} | - |')
    table = '\n'.join(lines)
    header = (f'Fashion-MNIST test top-1, {args.seeds} seed(s) per student, {args.epochs} epochs '
              f'of {args.train_size} training images; teachers {args.teacher_epochs} epochs of '
              f'{args.teacher_train_size}.\n\n')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(header + table + '\n')
    return header + table


def plot_curves(args, curves, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, arch in zip(axes, ('ViT', 'CNN')):
        for name, _, _, a, method in STUDENTS:
            runs = [c for c in curves.get(name, []) if c]
            if a != arch or not runs:
                continue
            n = min(len(c) for c in runs)
            mean = [statistics.mean(c[i] for c in runs) for i in range(n)]
            ax.plot(range(1, n + 1), mean, marker='o', label=f'{method} ({len(runs)} seeds)')
        ax.set_title(f'small {arch} student')
        ax.set_xlabel('epoch')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel('test top-1 (%)')
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle('mmkd quickstart: Fashion-MNIST, mean over seeds')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    students = [s for s in STUDENTS if not args.only or s[0] in args.only]
    retrain = [t for t in TEACHERS if args.retrain_teachers
               or last_checkpoint(osp.join(args.work_dir, t[0])) is None]
    progress = Progress([args.teacher_epochs * args.teacher_train_size] * len(retrain)
                        + [args.epochs * args.train_size] * (len(students) * args.seeds))
    t0 = time.time()

    teachers = {}
    for name, config, _, _, desc in TEACHERS:
        work = osp.join(args.work_dir, name)
        if any(t[0] == name for t in retrain):
            progress.begin(desc)
            train(config, work, run_options(args, args.teacher_epochs, 0, args.teacher_train_size), progress,
                  args.teacher_epochs)
            progress.end(f'top-1 {accuracy_curve(work)[-1]:.2f}')
        else:
            print(f'{desc}: reusing {last_checkpoint(work)} (--retrain-teachers to retrain)')
        teachers[name] = accuracy_curve(work)[-1]

    results, curves = {}, {}
    for name, config, teacher, _, method in students:
        for seed in range(args.seeds):
            work = osp.join(args.work_dir, f'{name}_seed{seed}')
            opts = run_options(args, args.epochs, seed, args.train_size)
            if teacher:
                opts.append(f'model.teacher_ckpt={last_checkpoint(osp.join(args.work_dir, teacher))}')
            progress.begin(f'{name} seed {seed}')
            train(config, work, opts, progress, args.epochs)
            curve = accuracy_curve(work)
            results.setdefault(name, []).append(curve[-1])
            curves.setdefault(name, []).append(curve)
            progress.end(f'top-1 {curve[-1]:.2f}')

    table = write_results(args, results, teachers)
    plot_curves(args, curves, osp.join(args.work_dir, 'curves.png'))
    print('\n' + table)
    print(f'\nwrote {osp.join(args.work_dir, "results.md")} and curves.png '
          f'in {time.strftime("%M:%S", time.gmtime(time.time() - t0))}')


if __name__ == '__main__':
    main()
