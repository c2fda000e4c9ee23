"""Training curves from MMEngine's scalar logs, several runs in one figure.

MMEngine's ``LocalVisBackend`` writes ``<work_dir>/<timestamp>/vis_data/scalars.json``, one
JSON object per line. Training records carry ``iter`` (and ``epoch`` in epoch-based runs) with
the losses (``loss``, ``loss_cls``, ``loss_kd``, ...) and ``lr``, ``time``, ...; validation
records carry the metrics (``accuracy/top1``, ``teacher/accuracy/top1``, ...) and ``step``,
which is the epoch in epoch-based runs and the iteration otherwise.

Training keys are plotted against the iteration, validation keys against the epoch (or the
iteration in iteration-based runs). A work dir holding several runs (a resumed training gets
a new timestamp) is read oldest first, a later record replacing an earlier one of the same
step.
"""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .plotting import new_figure, save_figure

#: bookkeeping keys that are not curves
NOT_CURVES = frozenset({'step', 'iter', 'epoch', 'data_time', 'time', 'memory', 'eta', 'lr',
                        'base_lr', 'momentum'})


def scalar_files(path: str) -> List[str]:
    """The ``scalars.json`` files of ``path``: a work dir (every timestamped run, oldest
    first), a run dir (``<work_dir>/<timestamp>``) or the file itself."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f"'{path}' is neither a work dir nor a scalars.json file")
    for pattern in (('vis_data', 'scalars.json'), ('*', 'vis_data', 'scalars.json'),
                    ('scalars.json', )):
        files = sorted(glob.glob(osp.join(path, *pattern)))
        if files:
            return files
    raise FileNotFoundError(f"no MMEngine scalar log under '{path}' (looked for "
                            '<timestamp>/vis_data/scalars.json)')


class Run:
    """The scalar records of one work dir, split into training and validation records."""

    def __init__(self, path: str, label: Optional[str] = None):
        self.path = path
        self.files = scalar_files(path)
        self.label = label or _default_label(path)
        train: Dict[int, dict] = {}
        val: Dict[int, dict] = {}
        for file in self.files:
            with open(file) as f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"'{file}' line {n} is not JSON: {e}") from None
                    if 'iter' in rec:
                        train[int(rec['iter'])] = {**train.get(int(rec['iter']), {}), **rec}
                    elif 'step' in rec:
                        val[int(rec['step'])] = {**val.get(int(rec['step']), {}), **rec}
        self.train = [train[k] for k in sorted(train)]
        self.val = [val[k] for k in sorted(val)]
        self.by_epoch = any('epoch' in r for r in self.train)

    def keys(self) -> List[str]:
        seen = {}
        for rec in self.train + self.val:
            for k, v in rec.items():
                if k not in NOT_CURVES and isinstance(v, (int, float)):
                    seen[k] = None
        return list(seen)

    def series(self, key: str) -> Tuple[np.ndarray, np.ndarray, str]:
        """``(x, y, x label)`` of ``key``; empty arrays when the run did not log it."""
        train = [(r['iter'], r[key]) for r in self.train if key in r]
        if train:
            x, y = zip(*train)
            return np.asarray(x, float), np.asarray(y, float), 'iteration'
        val = [(r['step'], r[key]) for r in self.val if key in r]
        if val:
            x, y = zip(*val)
            return np.asarray(x, float), np.asarray(y, float), \
                'epoch' if self.by_epoch else 'iteration'
        return np.zeros(0), np.zeros(0), ''


def _default_label(path: str) -> str:
    path = osp.normpath(path)
    if osp.isfile(path):  # <work_dir>/<timestamp>/vis_data/scalars.json
        path = osp.dirname(osp.dirname(osp.dirname(path)))
    elif osp.basename(path) == 'vis_data':
        path = osp.dirname(osp.dirname(path))
    elif osp.isdir(osp.join(path, 'vis_data')):  # a timestamped run dir
        path = osp.dirname(path)
    return osp.basename(path) or path


def unique_labels(paths: Sequence[str]) -> List[str]:
    """Work dir names, with parent dirs added until they are unique."""
    labels = [_default_label(p) for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    parts = [osp.normpath(osp.abspath(p)).split(osp.sep) for p in paths]
    for depth in range(2, max(len(p) for p in parts) + 1):
        labels = ['/'.join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [osp.abspath(p) for p in paths]


def default_keys(runs: Sequence[Run]) -> List[str]:
    """Every loss (``loss`` first), then every metric (``accuracy/top1``, ...)."""
    keys = list(dict.fromkeys(k for r in runs for k in r.keys()))
    losses = sorted((k for k in keys if 'loss' in k), key=lambda k: (k != 'loss', k))
    metrics = [k for k in keys if 'loss' not in k]
    return losses + metrics


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    if window <= 1 or len(y) < 2:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


CURVE_PANEL = (4.5, 3.2)  # inches per key
CURVE_COLS = 3            # at most this many panels per row
CURVE_HEADER = 0.5


def curve_grid_shape(num_keys: int) -> Tuple[int, int]:
    """(rows, columns) of the figure: a panel per key, at most 3 per row."""
    cols = min(max(num_keys, 1), CURVE_COLS)
    return -(-max(num_keys, 1) // cols), cols


def plot_curves(runs: Sequence[Run], out: str, keys: Optional[Sequence[str]] = None,
                smooth_window: int = 1, dpi: int = 100) -> List[str]:
    """One PNG: a panel per key (losses, then metrics), a line per run (legend: the work dir
    names). Returns the keys plotted.

    Raises:
        ValueError: a requested key no run logged (naming the keys that exist).
    """
    available = default_keys(runs)
    keys = list(keys) if keys else available
    missing = [k for k in keys if k not in available]
    if missing:
        raise ValueError(f'no run logged {missing}; logged keys: {available}')
    if not keys:
        raise ValueError('the runs logged no losses or metrics: ' + ', '.join(r.path for r in runs))
    rows, cols = curve_grid_shape(len(keys))
    fig = new_figure(rows, cols, CURVE_PANEL, header=CURVE_HEADER, dpi=dpi)
    gs = fig.add_gridspec(rows, cols)
    colors = [f'C{i % 10}' for i in range(len(runs))]
    for n, key in enumerate(keys):
        ax = fig.add_subplot(gs[n // cols, n % cols])
        xlabel = ''
        for run, color in zip(runs, colors):
            x, y, xl = run.series(key)
            if not len(x):
                continue
            xlabel = xlabel or xl
            is_train = xl == 'iteration' and any(key in r for r in run.train)
            ys = smooth(y, smooth_window) if is_train else y
            ax.plot(x, ys, color=color, label=run.label, lw=1.3,
                    marker=None if is_train and len(x) > 30 else 'o', ms=3)
        ax.set_title(key + (f' (moving average of {smooth_window})'
                            if smooth_window > 1 and 'loss' in key else ''), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel('%' if 'accuracy' in key else key.split('/')[-1], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle('Training curves: ' + ', '.join(r.label for r in runs), fontsize=10)
    save_figure(fig, out)
    return keys
