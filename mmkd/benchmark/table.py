"""A results table from configs: train the teachers, then every row's student over seeds, on
any MNIST-format data set, and write results.md, results.json and curves.png.

``tools/benchmark/results.py`` (the full table) and ``tools/quickstart.py`` (a few rows, a
shorter budget) are presets of :func:`run_table`.
"""
import argparse
import gzip
import os
import os.path as osp
import shutil
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .jobs import DONE_FILE, ROOT, Job, last_checkpoint, run_jobs, val_curve
from .report import Row, markdown_table, plot_curves, results_json, summarize, write_json

IDX_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
             't10k-labels-idx1-ubyte')
DEFAULT_DATA = osp.join(ROOT, 'data', 'fashion_mnist')


@dataclass
class Teacher:
    """A teacher of a table's rows, trained alone (seed 0) for ``epochs`` of the whole
    training split, and cached: its runs live in the tools' shared teacher dir."""
    key: str
    name: str
    config: str
    epochs: int


@dataclass
class Budget:
    """What every run of a table trains on. ``None`` sizes: the whole split;
    ``teacher_epochs=None``: each teacher's own ``epochs``; ``labelled``: how many of the
    students' training images keep their label (the first ones; ``None``: all); the teachers
    learn from every label. ``labelled_per_batch``: with ``labelled``, every student batch
    (baselines included) holds that many labelled images and the rest unlabelled
    (:class:`~mmkd.datasets.LabelledBatchSampler`), so every row sees the same labels in the
    same order; ``None``: plain batches of the whole set, and each baseline trains on the
    labelled images alone for as many iterations."""
    seeds: int
    epochs: int
    teacher_epochs: Optional[int] = None
    train_size: Optional[int] = None
    teacher_train_size: Optional[int] = None
    test_size: Optional[int] = None
    labelled: Optional[int] = None
    labelled_per_batch: Optional[int] = None


def add_arguments(parser: argparse.ArgumentParser, budget: Budget, work_dir: str) -> None:
    """The options every table tool shares, with the preset's defaults."""
    parser.add_argument('--data-root', default=DEFAULT_DATA,
                        help='a directory holding the four MNIST-format IDX files '
                        f'({", ".join(IDX_FILES)}; plain or .gz), 10 classes. Default: '
                        'Fashion-MNIST as tools/setup_env.sh prepares it')
    parser.add_argument('--data-name', help='the data set\'s name in titles (default: '
                        'Fashion-MNIST for the default root, else the directory name)')
    parser.add_argument('--work-dir', default=work_dir)
    parser.add_argument('--seeds', type=int, default=budget.seeds)
    parser.add_argument('--epochs', type=int, default=budget.epochs, help='epochs per student')
    parser.add_argument('--train-size', type=int, default=budget.train_size,
                        help='training images per student epoch (default: all)')
    parser.add_argument('--labelled', type=int, default=budget.labelled,
                        help='training images that keep their label for the students (the '
                        f'first ones; default {budget.labelled}; 0: all): cross-entropy learns '
                        'from those, distillation from every image')
    plain = 'plain batches' if not budget.labelled_per_batch else f'{budget.labelled_per_batch}'
    parser.add_argument('--labelled-per-batch', type=int, default=None, metavar='K',
                        help='with --labelled: every student batch (baselines too) holds K '
                        'labelled images and the rest unlabelled, the labelled stream the same '
                        f'for every row (default: {plain}; 0: plain batches of the whole set, '
                        'each baseline trained on the labelled images alone)')
    # the preset's K, taken by budget_from_args only when a labelled part exists
    parser.set_defaults(preset_labelled_per_batch=budget.labelled_per_batch)
    parser.add_argument('--teacher-epochs', type=int, default=budget.teacher_epochs,
                        help='epochs of every teacher (default: each teacher\'s own)')
    parser.add_argument('--teacher-dir', default=osp.join(ROOT, 'work_dirs', 'teachers'),
                        help='where teachers are trained and cached, shared by the tools: a '
                        'teacher trained with the same command is reused')
    parser.add_argument('--teacher-train-size', type=int, default=budget.teacher_train_size,
                        help='training images per teacher epoch (default: all)')
    parser.add_argument('--test-size', type=int, default=budget.test_size,
                        help='test images evaluated after every epoch (default: all)')
    parser.add_argument('--jobs', type=int, default=2,
                        help='training processes at once (default 2: on a 2-core machine two '
                        'one-thread runs train faster together than two-thread runs in turn)')
    parser.add_argument('--threads', type=int, help='torch threads per process (default: '
                        'the cores shared out between the processes)')
    parser.add_argument('--retrain-teachers', action='store_true')
    parser.add_argument('--rerun', action='store_true',
                        help='train every student again (default: reuse finished runs of the '
                        'same command in the work dir)')
    parser.add_argument('--only', nargs='+', metavar='ROW',
                        help='rows to run (default: every row but the supplementary ones)')
    parser.add_argument('--extras', action='store_true',
                        help='also run the supplementary rows (probes kept beside the table)')


def prepare_data(data_root: str, work_dir: str) -> str:
    """The directory mmpretrain's MNIST datasets read: ``data_root`` itself when it holds the
    four IDX files, else a copy with the ``.gz`` ones unpacked under ``work_dir/data``."""
    data_root = osp.abspath(data_root)
    if not osp.isdir(data_root):
        raise SystemExit(f'--data-root {data_root}: no such directory')
    if all(osp.isfile(osp.join(data_root, f)) for f in IDX_FILES):
        return data_root
    missing = [f for f in IDX_FILES if not osp.isfile(osp.join(data_root, f))
               and not osp.isfile(osp.join(data_root, f + '.gz'))]
    if missing:
        raise SystemExit(f'--data-root {data_root}: missing MNIST-format file(s) '
                         f'{", ".join(missing)} (plain or .gz); it holds '
                         f'{sorted(os.listdir(data_root))[:10]}')
    out = osp.join(work_dir, 'data', osp.basename(data_root.rstrip('/')))
    os.makedirs(out, exist_ok=True)
    for f in IDX_FILES:
        dst = osp.join(out, f)
        if osp.isfile(osp.join(data_root, f)):
            shutil.copyfile(osp.join(data_root, f), dst)
        elif not osp.isfile(dst):
            with gzip.open(osp.join(data_root, f + '.gz')) as src, open(dst + '.part', 'wb') as o:
                shutil.copyfileobj(src, o)
            os.replace(dst + '.part', dst)
    return out


def _labelled_option(labelled: Optional[int]) -> List[str]:
    # the regime's student pipeline starts with PartialLabels (configs/_base_/fmnist_results.py)
    return [f'train_dataloader.dataset.pipeline.0.num_labelled={labelled or None}']


def _batch_options(budget: Budget) -> List[str]:
    if not (budget.labelled and budget.labelled_per_batch):
        return []
    key = 'train_dataloader.batch_sampler'
    return [f'{key}.type=mmkd.LabelledBatchSampler', f'{key}.labelled={budget.labelled_per_batch}',
            f'{key}.num_labelled={budget.labelled}']


def _options(root: str, budget: Budget, epochs: int, seed: int,
             train_size: Optional[int]) -> List[str]:
    opts = [f'train_cfg.max_epochs={epochs}', f'randomness.seed={seed}',
            'default_hooks.checkpoint.max_keep_ckpts=1', 'default_hooks.logger.interval=50']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.data_root={root}')
    if train_size:
        opts.append(f'train_dataloader.dataset.indices={train_size}')
    if budget.test_size:
        opts += [f'val_dataloader.dataset.indices={budget.test_size}',
                 f'test_dataloader.dataset.indices={budget.test_size}']
    return opts


def _teacher_ckpt(key: str):
    def resolve(dirs: Dict[str, str]) -> List[str]:
        ckpt = last_checkpoint(dirs[key])
        if ckpt is None:
            raise RuntimeError(f'teacher {key}: no checkpoint in {dirs[key]}')
        return [f'model.teacher_ckpt={ckpt}']
    return resolve


def build_jobs(teachers: Sequence[Teacher], rows: Sequence[Row], budget: Budget,
               root: str) -> List[Job]:
    """The runs of the teachers the rows use (seed 0), then each row's runs, one per seed."""
    used = {r.teacher for r in rows if r.teacher}
    jobs = []
    for t in teachers:
        if t.key in used:
            epochs = budget.teacher_epochs or t.epochs
            jobs.append(Job(t.key, t.config, _options(root, budget, epochs, 0,
                                                      budget.teacher_train_size),
                            epochs=epochs, label=t.name,
                            images=epochs * (budget.teacher_train_size or 60000)))
    n_train = budget.train_size or train_count(root)
    for r in rows:
        epochs, options, val_every = budget.epochs, [], 1
        if budget.labelled and not budget.labelled_per_batch and not r.teacher:
            # trained alone, a student has only the labelled images: it learns from them in
            # batches of labelled images, for as many iterations as the distilled students
            epochs, options, val_every = _labelled_only(budget, n_train)
        for seed in range(budget.seeds):
            jobs.append(Job(f'{r.key}_seed{seed}', r.config,
                            _options(root, budget, epochs, seed, budget.train_size)
                            + _labelled_option(budget.labelled) + _batch_options(budget)
                            + options + list(r.options),
                            epochs=epochs, label=f'{r.key} seed {seed}',
                            images=budget.epochs * n_train, val_every=val_every,
                            needs=(r.teacher, ) if r.teacher else (),
                            resolve=_teacher_ckpt(r.teacher) if r.teacher else None))
    return jobs


def train_count(root: str) -> int:
    """The number of training images in ``root`` (from the IDX labels file's header)."""
    with open(osp.join(root, 'train-labels-idx1-ubyte'), 'rb') as f:
        return int.from_bytes(f.read(8)[4:8], 'big')


def _labelled_only(budget: Budget, n_train: int) -> Tuple[int, List[str], int]:
    """A baseline's run on the ``budget.labelled`` labelled images alone: (epochs, options,
    epochs between evaluations), evaluated at the distilled students' epoch ends."""
    if budget.labelled > n_train:
        raise SystemExit(f'--labelled {budget.labelled}: the students train on {n_train} images '
                         '(--train-size or the data set); give --labelled N with N at most '
                         'that, or --labelled 0 for every label')
    repeat = n_train // budget.labelled
    if repeat * budget.labelled != n_train:
        raise SystemExit(f'--labelled {budget.labelled} does not divide the {n_train} training '
                         'images: a baseline on the labelled images alone could not stop at the '
                         'distilled students\' iteration count and epoch ends')
    return (budget.epochs * repeat,
            [f'train_dataloader.dataset.indices={budget.labelled}',
             f'train_cfg.val_interval={repeat}'], repeat)


def data_name(args) -> str:
    if args.data_name:
        return args.data_name
    if osp.abspath(args.data_root) == DEFAULT_DATA:
        return 'Fashion-MNIST'
    return osp.basename(osp.abspath(args.data_root).rstrip('/'))


def describe(args, budget: Budget, teachers: Sequence[Teacher]) -> str:
    def size(n):
        return 'all' if not n else str(n)
    teacher_epochs = ', '.join(f'{t.name} {budget.teacher_epochs or t.epochs} epochs'
                               for t in teachers)
    return (f'{data_name(args)} test top-1 ({size(budget.test_size)} test images), '
            f'{budget.seeds} seed(s) per row, {budget.epochs} epoch(s) of {size(budget.train_size)} '
            f'training images per student, {size(budget.labelled)} of them labelled'
            + ((f', every batch {budget.labelled_per_batch} labelled and the rest unlabelled '
                '(the baselines in the same batches)' if budget.labelled_per_batch else
                ' (the baselines train on the labelled ones alone, as many iterations)')
               if budget.labelled else '')
            + f'; teachers {teacher_epochs} of {size(budget.teacher_train_size)}, all labelled.')


def budget_from_args(args) -> Budget:
    """The tools' options (:func:`add_arguments`) as a :class:`Budget`. Without
    ``--labelled-per-batch`` a labelled part takes the preset's K and ``--labelled 0`` (every
    image labelled) none; ``--labelled-per-batch K`` with ``--labelled 0`` is an error, not
    ignored."""
    per_batch = args.labelled_per_batch
    if per_batch and not args.labelled:
        raise SystemExit(f'--labelled-per-batch {per_batch} needs a labelled part '
                         f'(--labelled N), but --labelled is {args.labelled}: every image is '
                         'labelled, so there is no unlabelled part to fill the batches with')
    if per_batch is None:
        per_batch = args.preset_labelled_per_batch if args.labelled else None
    return Budget(args.seeds, args.epochs, args.teacher_epochs, args.train_size,
                  args.teacher_train_size, args.test_size, args.labelled or None,
                  per_batch or None)


def select_rows(rows: Sequence[Row], only: Optional[Sequence[str]] = None,
                extras: bool = False) -> List[Row]:
    """The rows named in ``only`` (any row, supplementary ones included), else every row that
    is not ``extra`` unless ``extras``. An unknown name stops the tool, listing the rows."""
    if only:
        unknown = sorted(set(only) - {r.key for r in rows})
        if unknown:
            raise SystemExit(f'--only: unknown row(s) {unknown}; rows: {[r.key for r in rows]}')
        return [r for r in rows if r.key in only]
    return [r for r in rows if extras or not r.extra]


def run_table(args, teachers: Sequence[Teacher], rows: Sequence[Row],
              json_out: Optional[str] = None) -> dict:
    """Train and report. Writes ``results.md``, ``results.json`` and ``curves.png`` in
    ``args.work_dir`` (and the JSON also to ``json_out``). Returns the JSON's content."""
    t0 = time.time()
    budget = budget_from_args(args)
    rows = select_rows(rows, args.only, args.extras)
    os.makedirs(args.work_dir, exist_ok=True)
    root = prepare_data(args.data_root, args.work_dir)
    jobs = build_jobs(teachers, rows, budget, root)
    teacher_keys = {t.key for t in teachers}
    for job in jobs:
        job.work_dir = osp.join(args.teacher_dir if job.name in teacher_keys else args.work_dir,
                                job.name)
        done = osp.join(job.work_dir, DONE_FILE)
        if osp.isfile(done) and (args.retrain_teachers if job.name in teacher_keys
                                 else args.rerun):
            os.remove(done)

    def on_end(job: Job) -> str:
        curve = val_curve(job.work_dir)
        return f'top-1 {curve[-1]:.2f}' if curve else 'no accuracy logged'

    dirs = run_jobs(jobs, args.work_dir, slots=args.jobs, threads=args.threads, on_end=on_end)

    tinfo = {t.key: dict(key=t.key, name=t.name, config=t.config,
                         top1=round(val_curve(dirs[t.key])[-1], 2))
             for t in teachers if t.key in dirs}
    curves = {r.key: [val_curve(dirs[f'{r.key}_seed{s}']) for s in range(budget.seeds)]
              for r in rows}
    accs = {k: [c[-1] for c in v if c] for k, v in curves.items()}
    records = summarize(rows, accs, tinfo)
    wall = time.time() - t0
    used = [t for t in teachers if t.key in tinfo]
    header = describe(args, budget, used)
    table = markdown_table(records, tinfo)
    text = (f'{header}\nΔ: mean gain over the same student\'s baseline; significant: Welch\'s '
            f't-test, two-sided, p < 0.05, and a gain.\n\n{table}\n')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(text)
    meta = dict(data=data_name(args), data_root=osp.abspath(args.data_root),
                budget=dict(vars(budget), teacher_epochs={
                    t.key: budget.teacher_epochs or t.epochs for t in used}),
                wall_seconds=round(wall), description=header)
    out = results_json(records, tinfo, meta)
    for path in filter(None, (osp.join(args.work_dir, 'results.json'), json_out)):
        write_json(path, out)
    plot_curves(rows, curves, osp.join(args.work_dir, 'curves.png'),
                f'{data_name(args)}: test top-1 per epoch, mean ± std over seeds')
    print('\n' + text)
    print(f'wrote results.md, results.json and curves.png in {args.work_dir} '
          f'({time.strftime("%H:%M:%S", time.gmtime(wall))})')
    return out
