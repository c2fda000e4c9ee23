"""Feature transferability (Cross-Architecture KD, Liu et al., Fig. 1b and 3b).

For a pair (student layer, teacher layer): features of both on split A and split B of the
images; a linear map ``W`` from the student's feature space to the teacher's is fitted on A by
least squares (``torch.linalg.lstsq``, float64); the transferability is the mean cosine
similarity, on B, between the mapped student features ``s_B @ W`` and the teacher's ``t_B``.

Features (``mode``):

* ``'tokens'`` (default): one vector per image *position*, the pixel-by-pixel view of the
  paper's projectors. CNN maps ``(B, C, H, W)`` and ViT patch tokens ``(B, L, D)`` (cls/dist
  tokens left out, patch tokens on their patch grid) are brought to the coarser of the two
  grids by adaptive average pooling; the samples are the (image, position) pairs and the
  cosine is averaged over them.
* ``'pooled'``: one vector per image: CNN maps averaged over H x W, ViT patch tokens averaged
  (cls/dist tokens left out), ``(B, D)`` vectors as they are.

``center=True`` (default) centres both feature sets by their split-A means before the fit and
the cosine. Uncentred (``center=False``, the paper's words taken literally), the mean feature,
large and positive after ReLU, dominates: any two networks then score above 0.99 pooled.

At random initialisation two networks are much more alike than one would think. A random
ViT's tokens are dominated by the linear patch embedding carried by the residual stream, so
two random small ViTs score ~0.99 even per position; two random small CNNs score ~0.8-0.95 per
position (deeper stages lower) and ~0.98-0.999 pooled (Fashion-MNIST, 256 images to fit). The
measure is meant for trained models (the paper: 0.6-0.7 between homologous trained ImageNet
models, below 0.55 across architectures). With ``'pooled'`` features, fit on clearly more
images than the student has channels, or the map interpolates split A and the cosine on B
drops for that reason alone (see :func:`underdetermined`).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.models.taps import FeatureTaps, find_module
from .loading import ImageSet, Subject, dataset_config, load_images
from .plotting import new_figure, save_figure
from .structure import stage_paths, token_layout

MODES = ('tokens', 'pooled')


def default_pairs(student: nn.Module, teacher: nn.Module) -> List[Tuple[str, str]]:
    """Stages paired at equal relative depth: with ``n = min(#student, #teacher)`` stages,
    pair ``k`` (1..n) takes the stage at depth ``k / n`` of each model (so the last stages are
    always paired)."""
    s, t = stage_paths(student), stage_paths(teacher)
    if not s or not t:
        raise ValueError('no default layer pairs for models without a backbone: pass pairs '
                         "('student.path:teacher.path')")
    n = min(len(s), len(t))
    pairs = []
    for k in range(1, n + 1):
        pairs.append((s[math.ceil(k * len(s) / n) - 1], t[math.ceil(k * len(t) / n) - 1]))
    return pairs


def parse_pairs(specs: Sequence[str]) -> List[Tuple[str, str]]:
    """``['backbone.layers.1:backbone.layer2', ...]`` -> ``[(student path, teacher path)]``."""
    pairs = []
    for spec in specs:
        s, sep, t = spec.partition(':')
        if not sep or not s or not t:
            raise ValueError(f"pair '{spec}' is not 'student.module.path:teacher.module.path'")
        pairs.append((s.strip(), t.strip()))
    return pairs


def spatial_features(model: nn.Module, out) -> Tensor:
    """A tap's output -> ``(B, h, w, D)``: CNN maps as they are, ViT tokens without the extra
    tokens on their patch grid, vectors as a 1 x 1 grid."""
    if isinstance(out, (tuple, list)):
        tensors = [o for o in out if isinstance(o, Tensor)]
        if not tensors:
            raise TypeError(f'the tapped module returned {type(out).__name__} without tensors')
        out = tensors[-1]
    if not isinstance(out, Tensor):
        raise TypeError(f'the tapped module returned {type(out).__name__}, not a tensor')
    out = out.detach().float()
    if out.dim() == 4:
        return out.permute(0, 2, 3, 1)
    if out.dim() == 3:
        extra, (h, w) = token_layout(model, out.shape[1])
        return out[:, extra:].reshape(out.shape[0], h, w, out.shape[2])
    if out.dim() == 2:
        return out[:, None, None, :]
    raise ValueError(f'cannot use a feature of shape {tuple(out.shape)}: expected (B, C, H, W) '
                     'maps, (B, L, D) tokens or (B, D) vectors')


@torch.no_grad()
def collect_features(subject: Subject, images: ImageSet, paths: Sequence[str],
                     batch_size: int = 64, progress: bool = False) -> Dict[str, Tensor]:
    """``path -> (N, h, w, D)`` features of ``subject`` at each module path over ``images``."""
    model = subject.model.eval()
    for p in paths:
        find_module(model, p, subject.role)  # nearest-name error before any forward
    taps = FeatureTaps(model, {p: p for p in dict.fromkeys(paths)}, subject.role)
    feats: Dict[str, List[Tensor]] = {p: [] for p in dict.fromkeys(paths)}
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(images))
    try:
        for batch in images.batches(batch_size):
            with taps.recording() as records:
                model(subject.normalise(batch), mode='tensor')
            for p in feats:
                feats[p].append(spatial_features(model, records[p]))
            if bar is not None:
                bar.update(len(batch))
    finally:
        taps.remove()
    if bar is not None:
        print()
    return {p: torch.cat(v) for p, v in feats.items()}


def as_samples(s: Tensor, t: Tensor, mode: str) -> Tuple[Tensor, Tensor]:
    """``(N, h, w, D)`` student/teacher features -> sample matrices ``(M, Ds)``, ``(M, Dt)``."""
    if mode == 'pooled':
        return s.mean(dim=(1, 2)), t.mean(dim=(1, 2))
    if mode != 'tokens':
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    h, w = min(s.shape[1], t.shape[1]), min(s.shape[2], t.shape[2])

    def to_grid(x):
        x = F.adaptive_avg_pool2d(x.permute(0, 3, 1, 2), (h, w))
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    return to_grid(s), to_grid(t)


def fit_linear_map(s: Tensor, t: Tensor) -> Tensor:
    """``W`` minimising ``||s @ W - t||`` (least squares, float64; minimum norm if ``s`` is
    rank deficient)."""
    return torch.linalg.lstsq(s.double(), t.double(), driver='gelsd').solution


def transferability(s_a: Tensor, t_a: Tensor, s_b: Tensor, t_b: Tensor,
                    center: bool = True) -> float:
    """Mean cosine similarity on B of ``s_B @ W`` and ``t_B``, ``W`` fitted on A."""
    s_a, t_a, s_b, t_b = (x.double() for x in (s_a, t_a, s_b, t_b))
    if center:
        s_mean, t_mean = s_a.mean(dim=0), t_a.mean(dim=0)
        s_a, s_b, t_a, t_b = s_a - s_mean, s_b - s_mean, t_a - t_mean, t_b - t_mean
    w = fit_linear_map(s_a, t_a)
    return F.cosine_similarity(s_b @ w, t_b, dim=1, eps=1e-12).mean().item()


def measure(student: Subject, teacher: Subject, pairs: Sequence[Tuple[str, str]],
            fit_images: ImageSet, eval_images: ImageSet, mode: str = 'tokens',
            center: bool = True, batch_size: int = 64, progress: bool = False) -> List[dict]:
    """The transferability of every pair: a list of
    ``dict(student=path, teacher=path, cosine, s_dim, t_dim, fit_samples, eval_samples)``."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    s_paths = [p for p, _ in pairs]
    t_paths = [p for _, p in pairs]
    feats = {}
    for name, subject, paths, imgs in (('s_a', student, s_paths, fit_images),
                                       ('t_a', teacher, t_paths, fit_images),
                                       ('s_b', student, s_paths, eval_images),
                                       ('t_b', teacher, t_paths, eval_images)):
        if progress:
            split = 'A (fit)' if name.endswith('a') else 'B (eval)'
            print(f'{subject.label}: split {split}, {len(imgs)} images')
        feats[name] = collect_features(subject, imgs, paths, batch_size, progress)
    rows = []
    for s_path, t_path in pairs:
        s_a, t_a = as_samples(feats['s_a'][s_path], feats['t_a'][t_path], mode)
        s_b, t_b = as_samples(feats['s_b'][s_path], feats['t_b'][t_path], mode)
        rows.append(dict(student=s_path, teacher=t_path,
                         cosine=transferability(s_a, t_a, s_b, t_b, center=center),
                         s_dim=s_a.shape[1], t_dim=t_a.shape[1], fit_samples=s_a.shape[0],
                         eval_samples=s_b.shape[0]))
    return rows


def split_images(cfg, num_fit: int, num_eval: int, fit_split: Optional[str] = None,
                 eval_split: Optional[str] = None) -> Tuple[ImageSet, ImageSet]:
    """Split A (fit) and split B (cosine), both with the test pipeline.

    B: the first ``num_eval`` images of the config's test dataset (or of ``eval_split``).
    A: the first ``num_fit`` images of ``fit_split``, by default ``'train'`` when the dataset
    has splits. When A and B come from the same split, A follows B (disjoint images).
    """
    test_split = dataset_config(cfg).get('split')
    if fit_split is None and test_split is not None:
        fit_split = 'train'
    eval_images = load_images(cfg, num_eval, split=eval_split)
    same = (fit_split or test_split) == (eval_split or test_split)
    fit_images = load_images(cfg, num_fit, split=fit_split, start=num_eval if same else 0)
    return fit_images, eval_images


def underdetermined(rows: Sequence[dict]) -> List[str]:
    """Pairs whose fit split has fewer samples than student feature dimensions (the map then
    interpolates split A exactly and generalises poorly: use more images)."""
    return [f"{r['student']}:{r['teacher']}" for r in rows if r['fit_samples'] <= r['s_dim']]


def markdown_table(results: Dict[str, List[dict]]) -> str:
    """A Markdown table: a row per layer pair, a cosine column per compared student."""
    names = list(results)
    first = results[names[0]]
    lines = ['| student layer | teacher layer | dims (s -> t) | '
             + ' | '.join(f'cosine: {n}' for n in names) + ' |',
             '|---|---|---|' + '---:|' * len(names)]
    for k, row in enumerate(first):
        cells = [f"{results[n][k]['cosine']:.4f}" for n in names]
        lines.append(f"| `{row['student']}` | `{row['teacher']}` | "
                     f"{row['s_dim']} -> {row['t_dim']} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


BAR_PANEL = (1.6, 4.0)  # inches per layer pair (width) x plot height
BAR_MIN_COLS = 4        # the figure is at least this many pairs wide


def bar_figure_shape(results: Dict[str, List[dict]]) -> Tuple[int, int]:
    """(rows, columns) of pair slots in the bar chart: 1 row, max(pairs, 4) columns."""
    return 1, max(len(next(iter(results.values()))), BAR_MIN_COLS)


def plot_transferability(results: Dict[str, List[dict]], out: str, title: str = '',
                         dpi: int = 100) -> Tuple[int, int]:
    """Bar chart: a group per layer pair, a bar per compared student (legend), cosine on y."""
    rows, cols = bar_figure_shape(results)
    fig = new_figure(rows, cols, BAR_PANEL, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    names = list(results)
    pairs = results[names[0]]
    x = np.arange(len(pairs))
    width = 0.8 / len(names)
    lo = min(0.0, min(r['cosine'] for rs in results.values() for r in rs))
    for j, name in enumerate(names):
        vals = [r['cosine'] for r in results[name]]
        bars = ax.bar(x + (j - (len(names) - 1) / 2) * width, vals, width, label=name)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, max(v, 0) + 0.01, f'{v:.3f}',
                    ha='center', va='bottom', fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([f"S: {r['student']}\nT: {r['teacher']}" for r in pairs], fontsize=7,
                       rotation=20, ha='right')
    ax.set_ylabel('cosine(student features @ W, teacher features)', fontsize=8)
    ax.set_ylim(lo, 1.25)  # room for the legend above the bars
    ax.axhline(1.0, color='grey', lw=0.5, ls='--')
    ax.set_xlim(-0.6, len(pairs) - 0.4)
    ax.legend(fontsize=7, loc='upper right', ncol=len(names))
    ax.grid(axis='y', alpha=0.3)
    ax.set_title(title or 'Feature transferability (linear map fitted on split A, cosine on '
                 'split B)', fontsize=9)
    save_figure(fig, out)
    return rows, cols
