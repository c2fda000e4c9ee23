"""Does distillation help downstream, on real images? The composed Fashion-MNIST benchmark.

Two questions, each answered by real ``tools/train.py`` runs of the configs in
``configs/downstream/composed_fmnist/`` on the composed set (docs/composed_fmnist.md):

- **segmentation distillation**: a DeepLabV3+ teacher is trained first; the student is then
  trained alone and with TaT-seg from that teacher, over seeds (mIoU mean ± std, the gain over
  the student alone and Welch's p);
- **backbone transfer**: Mask R-CNN (box / mask mAP) and UPerNet (mIoU) with the results table's
  students as backbones, each loaded from a checkpoint or randomly initialised.

``tools/benchmark/downstream.py`` is the command line. Runs go through
:func:`mmkd.benchmark.jobs.run_jobs` (several processes at once, progress lines with the time
left); a run whose work dir holds a finished run of the same command, with its metric logged,
is reused, so an interrupted benchmark continues where it stopped.
"""
import math
import os
import os.path as osp
import statistics
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .jobs import DONE_FILE, ROOT, Job, command, last_checkpoint, run_jobs, same_run
from .report import ALPHA, mean_std, welch_p, write_json

CFG = 'configs/downstream/composed_fmnist'
SUFFIX = '1xb8-6e_composed-fmnist-128x128.py'
SEG_TEACHER = f'{CFG}/deeplabv3plus_r34-w32-d8_{SUFFIX}'
SEG_STUDENT = f'{CFG}/deeplabv3plus_r18-w32-d8_{SUFFIX}'
SEG_TAT = f'{CFG}/deeplabv3plus_r18-w32_r34-w32-d8_1xb8-6e_composed-fmnist-128x128_tat.py'


def _pair(name: str) -> Tuple[str, str]:
    """(the config loading a checkpoint, its random-init twin); ``{}`` is where the twin's
    name has ``-scratch``."""
    return f'{CFG}/{name.format("")}_{SUFFIX}', f'{CFG}/{name.format("-scratch")}_{SUFFIX}'


#: arch -> task -> (config loading a checkpoint, config of the random-init row)
TRANSFER = dict(
    vit=dict(det=_pair('mask-rcnn_fmnist-vit-p7-w64{}_simple-fpn'),
             seg=_pair('upernet_fmnist-vit-p7-w64{}_mln')),
    cnn=dict(det=_pair('mask-rcnn_fmnist-resnet-w4{}_fpn'),
             seg=_pair('upernet_fmnist-resnet-w4{}')))
ARCHS = dict(vit='ViT student (patch 7, width 64, 4 blocks)',
             cnn='CNN student (ResNet_CIFAR-18, 4/8/16 channels)')
TASKS = dict(det='Mask R-CNN', seg='UPerNet')
#: what each run reports: the key of its last validation record
SEG_METRIC = 'mIoU'
DET_METRICS = ('coco/bbox_mAP', 'coco/segm_mAP')
#: training batch of every config (tests/test_downstream_composed.py checks it)
BATCH = 8
#: iterations per run by default: 6 epochs of the 2000 train canvases (docs/downstream.md)
DEFAULT_ITERS = 1500
DEFAULT_DATA_ROOT = osp.join(ROOT, 'data', 'composed_fmnist')
RANDOM = 'random'


@dataclass
class Backbone:
    """A backbone of the transfer table: a checkpoint (or ``None``: random init) of one arch.

    ``prefix``: where the backbone's keys sit in the file: ``''`` for what
    ``extract_student.py --backbone`` writes, ``'backbone.'`` for a classifier checkpoint (a
    results-table baseline, which ``extract_student.py`` refuses: it is no distillation
    checkpoint), ``'student.backbone.'`` for a distillation checkpoint itself.
    """
    name: str
    arch: str
    path: Optional[str] = None
    prefix: str = ''

    @property
    def is_random(self) -> bool:
        return self.path is None


@dataclass
class Budget:
    """What every run trains on: ``iters`` iterations, rounded to whole epochs of the train
    canvases at batch :data:`BATCH`."""
    iters: int
    teacher_iters: int
    train_images: int
    val_images: int
    seeds: int
    transfer_seeds: int

    def epochs(self, iters: int) -> int:
        per_epoch = math.ceil(self.train_images / BATCH)
        return max(1, round(iters / per_epoch))

    def run_iters(self, iters: int) -> int:
        return self.epochs(iters) * math.ceil(self.train_images / BATCH)


@dataclass
class Spec:
    """A job plus what the report needs about it."""
    job: Job
    part: str  # 'seg' or 'transfer'
    row: str  # 'teacher' / 'baseline' / 'tat' or the backbone's name
    task: str  # 'seg' or 'det'
    seed: int
    metrics: Tuple[str, ...] = field(default=(SEG_METRIC, ))


# ---------------------------------------------------------------------------------------------
# backbones


def _state_dict(path: str) -> dict:
    import torch
    ckpt = torch.load(path, map_location='cpu')  # weights_only; MMEngine types: mmkd.compat
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"'{path}' holds no state dict")
    return state


def inspect_backbone(name: str, path: str) -> Backbone:
    """A :class:`Backbone` from a checkpoint file: which arch (ViT: ``pos_embed``; CNN:
    ``layer1.0.conv1.weight``) and under which prefix its keys are; an error naming the file
    when it is neither student."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"--backbones {name}={path}: no such file")
    state = _state_dict(path)
    prefix = next((p for p in ('student.backbone.', 'backbone.')
                   if any(k.startswith(p) for k in state)), '')
    keys = {k[len(prefix):] for k in state if k.startswith(prefix)}
    if 'pos_embed' in keys and 'patch_embed.projection.weight' in keys:
        arch = 'vit'
    elif 'conv1.weight' in keys and 'layer1.0.conv1.weight' in keys:
        arch = 'cnn'
    else:
        raise ValueError(f"--backbones {name}={path}: neither the ViT nor the CNN student's "
                         f"backbone (first keys: {sorted(keys)[:6]})")
    return Backbone(name, arch, osp.abspath(path), prefix)


def check_backbone(backbone: Backbone) -> None:
    """Load the checkpoint strictly into the backbone its configs build, now rather than hours
    later: :class:`~mmkd.downstream.CheckpointMismatchError` names the missing, unexpected or
    mis-shaped keys."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import mmkd.downstream  # noqa: F401  (PlainViT, StrictPretrained)
    from mmdet.registry import MODELS
    from mmkd.downstream import StrictPretrainedInit
    cfg = Config.fromfile(osp.join(ROOT, TRANSFER[backbone.arch]['det'][0])).model.backbone
    cfg.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        module = MODELS.build(cfg)
    StrictPretrainedInit(backbone.path, prefix=backbone.prefix or None)(module)


def parse_backbones(items: Sequence[str]) -> List[Backbone]:
    """``NAME=PATH`` items and ``random`` (random init of each arch named, of both when none
    is) -> backbones, random rows first within an arch."""
    named, random = [], False
    for item in items:
        if item == RANDOM:
            random = True
            continue
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise ValueError(f"--backbones: expected NAME=PATH or '{RANDOM}', got {item!r}")
        if name.startswith(RANDOM):
            raise ValueError(f"--backbones: the name {name!r} is reserved for random init")
        named.append(inspect_backbone(name, path))
    names = [b.name for b in named]
    if len(set(names)) != len(names):
        raise ValueError(f'--backbones: names must differ, got {names}')
    archs = [a for a in ARCHS if any(b.arch == a for b in named)] or list(ARCHS)
    out = []
    for arch in archs:
        if random:
            out.append(Backbone(f'{RANDOM}-{arch}', arch))
        out += [b for b in named if b.arch == arch]
    return out


# ---------------------------------------------------------------------------------------------
# jobs


def data_options(data_root: str, budget: Budget, task: str) -> List[str]:
    """The composed set every run reads (its root and options, also the COCO json the det
    evaluator reads); part of the command, so a run on another set is never reused."""
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}',
                 f'{loader}.dataset.compose.train_images={budget.train_images}',
                 f'{loader}.dataset.compose.val_images={budget.val_images}']
    if task == 'det':
        ann = osp.join(data_root, 'annotations', 'instances_val.json')
        opts += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
    return opts


def schedule_options(epochs: int, seed: int) -> List[str]:
    return [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
            f'randomness.seed={seed}']


def _teacher_ckpt(work_dir: str):
    def resolve(_dirs: Dict[str, str]) -> List[str]:
        ckpt = last_checkpoint(work_dir)
        if ckpt is None:
            raise RuntimeError(f'segmentation teacher: no checkpoint in {work_dir}')
        return [f'model.teacher_ckpt={ckpt}']
    return resolve


def build_specs(budget: Budget, data_root: str, work_dir: str, backbones: Sequence[Backbone],
                parts: Sequence[str] = ('seg', 'transfer')) -> List[Spec]:
    """Every run of the benchmark, teachers first; each job's work dir set."""
    specs: List[Spec] = []

    def add(name, config, part, row, task, seed, iters, label, extra=(), needs=(),
            resolve=None, metrics=(SEG_METRIC, )):
        epochs = budget.epochs(iters)
        job = Job(name, config, data_options(data_root, budget, task)
                  + schedule_options(epochs, seed) + list(extra), epochs=epochs,
                  images=epochs * budget.train_images, label=label, needs=needs,
                  resolve=resolve)
        job.work_dir = osp.join(work_dir, name)
        specs.append(Spec(job, part, row, task, seed, tuple(metrics)))

    if 'seg' in parts:
        add('seg_teacher', SEG_TEACHER, 'seg', 'teacher', 'seg', 0, budget.teacher_iters,
            'seg teacher')
        teacher_dir = osp.join(work_dir, 'seg_teacher')
        for seed in range(budget.seeds):
            add(f'seg_baseline_seed{seed}', SEG_STUDENT, 'seg', 'baseline', 'seg', seed,
                budget.iters, f'seg student seed {seed}')
            add(f'seg_tat_seed{seed}', SEG_TAT, 'seg', 'tat', 'seg', seed, budget.iters,
                f'seg student + TaT-seg seed {seed}',
                needs=('seg_teacher', ), resolve=_teacher_ckpt(teacher_dir))
    if 'transfer' in parts:
        for b in backbones:
            for task in ('det', 'seg'):
                loaded, scratch = TRANSFER[b.arch][task]
                extra = [] if b.is_random else [f'model.backbone.init_cfg.checkpoint={b.path}']
                if b.prefix:
                    extra.append(f'model.backbone.init_cfg.prefix={b.prefix}')
                for seed in range(budget.transfer_seeds):
                    add(f'{task}_{b.name}_seed{seed}', scratch if b.is_random else loaded,
                        'transfer', b.name, task, seed, budget.iters,
                        f'{TASKS[task]} {b.name} seed {seed}', extra,
                        metrics=DET_METRICS if task == 'det' else (SEG_METRIC, ))
    return specs


# ---------------------------------------------------------------------------------------------
# results


def final_metrics(work_dir: str) -> Dict[str, float]:
    """The numbers of the last validation of ``work_dir``'s runs; {} when none was logged."""
    from mmkd.analysis.curves import Run
    try:
        run = Run(work_dir)
    except FileNotFoundError:
        return {}
    if not run.val:
        return {}
    return {k: float(v) for k, v in run.val[-1].items() if isinstance(v, (int, float))}


def is_finished(spec: Spec, cmd: Sequence[str]) -> bool:
    """The work dir holds a completed run of this command and config, its metrics logged."""
    return same_run(spec.job, cmd) and all(k in final_metrics(spec.job.work_dir)
                                           for k in spec.metrics)


def _describe(metrics: Dict[str, float], spec: Spec) -> str:
    if not all(k in metrics for k in spec.metrics):
        return 'no metric logged'
    if spec.task == 'det':
        return (f"box mAP {100 * metrics[DET_METRICS[0]]:.1f}, "
                f"mask mAP {100 * metrics[DET_METRICS[1]]:.1f}")
    return f'mIoU {metrics[SEG_METRIC]:.2f}'


def _stats(values: Sequence[float]) -> dict:
    if not values:
        return dict(values=[], mean=None, std=None)
    mean, std = mean_std(values)
    return dict(values=[round(v, 2) for v in values], mean=round(mean, 2), std=round(std, 2))


def _compare(values: Sequence[float], base: Sequence[float]) -> dict:
    if not values or not base:
        return dict(delta=None, p_value=None)
    p = welch_p(values, base)
    return dict(delta=round(statistics.mean(values) - statistics.mean(base), 2),
                p_value=None if math.isnan(p) else round(p, 4))


def collect(specs: Sequence[Spec], backbones: Sequence[Backbone]) -> dict:
    """Per-seed numbers -> the table's records (percent throughout: mmdet's mAP x 100)."""
    values: Dict[Tuple[str, str, str], List[float]] = {}
    for s in specs:
        m = final_metrics(s.job.work_dir)
        for key in s.metrics:
            if key in m:
                scale = 100.0 if key in DET_METRICS else 1.0
                values.setdefault((s.row, s.task, key), []).append(scale * m[key])
    seg_rows = []
    names = dict(teacher='teacher (DeepLabV3+ R34-w32)', baseline='student (DeepLabV3+ R18-w32)',
                 tat='student + TaT-seg')
    configs = dict(teacher=SEG_TEACHER, baseline=SEG_STUDENT, tat=SEG_TAT)
    if any(s.part == 'seg' for s in specs):
        base = values.get(('baseline', 'seg', SEG_METRIC), [])
        for row in ('teacher', 'baseline', 'tat'):
            v = values.get((row, 'seg', SEG_METRIC), [])
            rec = dict(row=row, name=names[row], config=configs[row], miou=_stats(v))
            rec.update(_compare(v, base) if row == 'tat' else dict(delta=None, p_value=None))
            seg_rows.append(rec)
    transfer_rows = []
    if any(s.part == 'transfer' for s in specs):
        for b in backbones:
            rec = dict(backbone=b.name, arch=b.arch, arch_name=ARCHS[b.arch],
                       checkpoint=b.path, prefix=b.prefix or None)
            ref = f'{RANDOM}-{b.arch}'
            for task, key, out in (('det', DET_METRICS[0], 'box_map'),
                                   ('det', DET_METRICS[1], 'mask_map'),
                                   ('seg', SEG_METRIC, 'miou')):
                v = values.get((b.name, task, key), [])
                rec[out] = _stats(v)
                if not b.is_random and any(x.name == ref for x in backbones):
                    rec[out].update(_compare(v, values.get((ref, task, key), [])))
            transfer_rows.append(rec)
    return dict(seg=seg_rows, transfer=transfer_rows)


def _cell(stats: dict) -> str:
    if stats.get('mean') is None:
        return 'not measured'
    if len(stats['values']) > 1:
        return f"{stats['mean']:.2f} ± {stats['std']:.2f}"
    return f"{stats['mean']:.2f}"


def _delta(stats: dict) -> str:
    if stats.get('delta') is None:
        return ''
    p = stats.get('p_value')
    return f" ({stats['delta']:+.2f}" + (f', p {p:.3f})' if p is not None else ')')


def markdown(records: dict, header: str) -> str:
    """The two tables as Markdown, below ``header``."""
    lines = [header, '']
    if records['seg']:
        lines += ['### Segmentation distillation (DeepLabV3+, val mIoU %)', '',
                  '| run | seeds | mIoU (mean ± std) | per seed | Δ vs student alone '
                  "(Welch's p) |", '|---|---|---|---|---|']
        for r in records['seg']:
            m = r['miou']
            delta = '' if r['delta'] is None else f"{r['delta']:+.2f}" + (
                f" (p {r['p_value']:.3f})" if r['p_value'] is not None else '')
            lines.append(f"| {r['name']} | {len(m['values'])} | {_cell(m)} | "
                         f"{', '.join(f'{v:.2f}' for v in m['values'])} | {delta} |")
        lines.append('')
    if records['transfer']:
        lines += ['### Backbone transfer (val; Mask R-CNN box/mask mAP %, UPerNet mIoU %; '
                  '(Δ vs random init of the same arch))', '',
                  '| backbone | arch | checkpoint | box mAP | mask mAP | mIoU |',
                  '|---|---|---|---|---|---|']
        for r in records['transfer']:
            ckpt = '- (random init)' if r['checkpoint'] is None else f"`{r['checkpoint']}`"
            cells = [_cell(r[k]) + _delta(r[k]) for k in ('box_map', 'mask_map', 'miou')]
            lines.append(f"| {r['backbone']} | {r['arch']} | {ckpt} | " + ' | '.join(cells)
                         + ' |')
        lines.append('')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------
# the benchmark


def run_benchmark(budget: Budget, data_root: str, work_dir: str,
                  backbones: Sequence[Backbone], parts: Sequence[str] = ('seg', 'transfer'),
                  slots: int = 2, threads: Optional[int] = None, rerun: bool = False,
                  retrain_teacher: bool = False) -> dict:
    """Make the set, run what is not finished yet, write ``downstream.md`` and
    ``downstream.json`` in ``work_dir``; returns the JSON's content."""
    from mmkd.downstream.composed import prepare_composed
    t0 = time.time()
    data_root = osp.abspath(data_root)
    os.makedirs(work_dir, exist_ok=True)
    meta = prepare_composed(data_root, dict(train_images=budget.train_images,
                                            val_images=budget.val_images))
    print(f"composed set {data_root}: {meta['counts']['train']['images']} train / "
          f"{meta['counts']['val']['images']} val canvases", flush=True)
    specs = build_specs(budget, data_root, work_dir, backbones, parts)

    # Reuse: jobs.run_jobs's own check reads a classifier's top-1, so finished runs are found
    # here (same command, metrics logged) and left out; a job whose teacher is reused no longer
    # waits for it (its resolve reads the teacher's dir directly).
    done, todo = set(), []
    for spec in specs:
        job = spec.job
        fresh = rerun or (retrain_teacher and spec.row == 'teacher')
        if fresh and osp.isfile(osp.join(job.work_dir, DONE_FILE)):
            os.remove(osp.join(job.work_dir, DONE_FILE))
        if all(n in done for n in job.needs):  # else its teacher trains first: so does it
            extra = job.resolve({}) if job.resolve else []
            if is_finished(spec, command(job, extra)):
                done.add(job.name)
                print(f'[reused] {job.label}: {_describe(final_metrics(job.work_dir), spec)}',
                      flush=True)
                continue
        todo.append(spec)
    for spec in todo:
        spec.job.needs = tuple(n for n in spec.job.needs if n not in done)
    by_name = {s.job.name: s for s in specs}
    print(f'{len(todo)} run(s) to train, {len(done)} reused; {slots} at a time', flush=True)
    if todo:
        run_jobs([s.job for s in todo], work_dir, slots=slots, threads=threads, reuse=False,
                 on_end=lambda job: _describe(final_metrics(job.work_dir), by_name[job.name]))

    records = collect(specs, backbones)
    wall = time.time() - t0
    header = describe(budget, data_root, meta)
    text = markdown(records, header)
    with open(osp.join(work_dir, 'downstream.md'), 'w') as f:
        f.write(text)
    content = dict(
        meta=dict(data_root=data_root, counts=meta['counts'], budget=vars(budget),
                  epochs=dict(student=budget.epochs(budget.iters),
                              teacher=budget.epochs(budget.teacher_iters)),
                  iterations=dict(student=budget.run_iters(budget.iters),
                                  teacher=budget.run_iters(budget.teacher_iters)),
                  batch=BATCH, parts=list(parts), wall_seconds=round(wall),
                  description=header,
                  significance=f"Welch's t-test, two-sided (p < {ALPHA}: beyond seed noise)"),
        runs={s.job.name: dict(config=s.job.config, work_dir=s.job.work_dir, seed=s.seed,
                               metrics={k: v for k, v in final_metrics(s.job.work_dir).items()
                                        if k in s.metrics})
              for s in specs},
        **records)
    write_json(osp.join(work_dir, 'downstream.json'), content)
    print('\n' + text)
    print(f'wrote downstream.md and downstream.json in {work_dir} '
          f'({time.strftime("%H:%M:%S", time.gmtime(wall))})', flush=True)
    return content


def describe(budget: Budget, data_root: str, meta: dict) -> str:
    c = meta['counts']
    s_it, t_it = budget.run_iters(budget.iters), budget.run_iters(budget.teacher_iters)
    return (f"Composed Fashion-MNIST (`{data_root}`: {c['train']['images']} train / "
            f"{c['val']['images']} val canvases, 128 px, grey), evaluated on val. Every run "
            f"{s_it} iterations ({budget.epochs(budget.iters)} epochs, batch {BATCH}; the "
            f"segmentation teacher {t_it}), AdamW 1e-3, cosine decay. Segmentation rows: "
            f"{budget.seeds} seed(s); transfer rows: {budget.transfer_seeds} seed(s).")
