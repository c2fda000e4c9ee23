"""Attention maps of ViT students and teachers (ViTKD Fig. 1 and 4, CSKD Fig. 7).

mmpretrain's :class:`~mmpretrain.models.utils.MultiheadAttention` calls
``scaled_dot_product_attention``, which never materialises the attention weights. A forward
hook on its ``qkv`` Linear captures ``(B, L, 3 * D)``; the weights are recomputed from it as
``softmax(Q K^T / sqrt(head_dims))`` per head, exactly what the module computes (at test time
attention dropout is off).

Tokens are ``[extra tokens (cls, dist) | patch tokens]``, the patch tokens in row-major order
of the patch grid.
"""
import contextlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.models.taps import FeatureTaps
from .loading import ImageSet, Subject
from .plotting import new_figure, save_figure
from .structure import stage_paths, token_layout


def _mha_type():
    from mmpretrain.models.utils.attention import MultiheadAttention
    return MultiheadAttention


def attention_layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(path, module)`` of every attention module whose weights can be recomputed from its
    ``qkv`` output, in forward order. Empty for a model without attention (a CNN).

    Raises:
        TypeError: when the model's attention is of another kind (relative position biases,
            windows: BEiT, Swin, ...), whose weights ``qkv`` alone does not give.
    """
    mha = _mha_type()
    found, other = [], []
    for path, module in model.named_modules():
        if isinstance(module, mha):
            found.append((path, module))
        elif isinstance(getattr(module, 'qkv', None), nn.Linear) and hasattr(module, 'num_heads'):
            other.append(f'{path} ({type(module).__name__})')
    if other and not found:
        raise TypeError(f'{type(model).__name__}: attention maps are recomputed for '
                        "mmpretrain's MultiheadAttention (VisionTransformer, "
                        'DistilledVisionTransformer, DeiT3, ...); this model has other '
                        f'attention modules (biases or windows not in qkv): {other[:3]}')
    return found


def attention_from_qkv(qkv: Tensor, num_heads: int) -> Tensor:
    """``(B, L, 3 * D)`` qkv -> ``(B, heads, L, L)`` attention weights (softmax over keys)."""
    B, L, three_d = qkv.shape
    head_dims = three_d // 3 // num_heads
    qkv = qkv.reshape(B, L, 3, num_heads, head_dims).permute(2, 0, 3, 1, 4).float()
    q, k = qkv[0], qkv[1]
    return torch.softmax(q @ k.transpose(-2, -1) * head_dims ** -0.5, dim=-1)


def _normalise_index(idx: int, depth: int, role: str) -> int:
    if not -depth <= idx < depth:
        raise IndexError(f'the {role} has {depth} attention layers (0..{depth - 1}); '
                         f'layer {idx} does not exist')
    return idx % depth


@dataclass
class AttentionResult:
    """What :func:`collect_attention` measured for one subject.

    ``maps[layer]``: ``(heads, L, L)`` attention averaged over the images (query x key);
    ``cls_maps``: ``(N, heads, h, w)`` attention of the cls token (query) to the patch
    tokens (keys) in ``cls_layer``, or for a CNN ``(N, 1, h, w)`` the labelled substitute
    (mean |activation| of the backbone's last feature map); ``cls_kind`` says which.
    """
    label: str
    has_attention: bool
    depth: int = 0
    layers: List[int] = field(default_factory=list)
    paths: Dict[int, str] = field(default_factory=dict)
    maps: Dict[int, np.ndarray] = field(default_factory=dict)
    num_extra: int = 0
    grid: Tuple[int, int] = (0, 0)
    cls_layer: Optional[int] = None
    cls_maps: Optional[np.ndarray] = None
    cls_kind: str = ''
    preds: List[int] = field(default_factory=list)
    num_images: int = 0


def _last_feature_map(feats) -> Optional[Tensor]:
    if isinstance(feats, (tuple, list)):
        maps = [f for f in feats if isinstance(f, Tensor) and f.dim() == 4]
        return maps[-1] if maps else None
    return feats if isinstance(feats, Tensor) and feats.dim() == 4 else None


def _predict(model: nn.Module, inputs: Tensor) -> List[int]:
    samples = model.predict(inputs)
    return [int(s.pred_label[0]) for s in samples]


@torch.no_grad()
def collect_attention(subject: Subject, images: ImageSet, layers: Optional[Sequence[int]] = None,
                      cls_layer: int = -1, batch_size: int = 32, progress: bool = False
                      ) -> AttentionResult:
    """Attention of ``subject`` over ``images``.

    Args:
        layers: attention layers to average (indices among the model's attention modules,
            negative from the end); default all.
        cls_layer: the layer whose cls-token attention is mapped onto the images.
    """
    model = subject.model.eval()
    found = attention_layers(model)
    res = AttentionResult(subject.label, bool(found), depth=len(found), num_images=len(images))
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        print(f'{subject.label}: {len(images)} images')
        bar = ProgressBar(len(images))
    if not found:
        # A CNN has no attention: the clearly labelled substitute for the heatmap is the
        # channel-mean absolute activation of the backbone's last feature map.
        maps = []
        stages = stage_paths(model)  # the last stage's map (a backbone may output it pooled)
        taps = FeatureTaps(model, {'feat': stages[-1]}, subject.role) if stages else None
        try:
            for batch in images.batches(batch_size):
                inputs = subject.normalise(batch)
                with taps.recording() if taps else contextlib.nullcontext({}) as records:
                    res.preds += _predict(model, inputs)
                feat = _last_feature_map(records.get('feat'))
                if feat is not None:
                    maps.append(feat.abs().mean(dim=1, keepdim=True))
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if taps:
                taps.remove()
        if maps:
            res.cls_maps = torch.cat(maps).numpy()
            res.grid = tuple(res.cls_maps.shape[-2:])
            res.cls_kind = 'activation'
        if bar is not None:
            print()
        return res

    depth = len(found)
    res.layers = [_normalise_index(i, depth, subject.role)
                  for i in (range(depth) if layers is None else layers)]
    res.cls_layer = _normalise_index(cls_layer, depth, subject.role)
    wanted = sorted(set(res.layers) | {res.cls_layer})
    res.paths = {i: found[i][0] for i in wanted}
    taps = FeatureTaps(model, {str(i): f'{found[i][0]}.qkv' if found[i][0] else 'qkv'
                               for i in wanted}, subject.role)
    sums: Dict[int, Tensor] = {}
    cls_rows = []
    try:
        for batch in images.batches(batch_size):
            inputs = subject.normalise(batch)
            with taps.recording() as records:
                res.preds += _predict(model, inputs)
            for i in wanted:
                attn = attention_from_qkv(records[str(i)], found[i][1].num_heads)
                if i in res.layers:
                    sums[i] = sums.get(i, 0) + attn.sum(dim=0)
                if i == res.cls_layer:
                    extra, grid = token_layout(model, attn.shape[-1])
                    res.num_extra, res.grid = extra, grid
                    if extra > 0:
                        rows = attn[:, :, 0, extra:]  # cls query -> patch keys
                        res.cls_kind = 'cls'
                    else:  # no cls token: the attention each patch receives, labelled so
                        rows = attn.mean(dim=2)
                        res.cls_kind = 'received'
                    cls_rows.append(rows.reshape(*rows.shape[:2], *grid))
            if bar is not None:
                bar.update(len(batch))
    finally:
        taps.remove()
    if bar is not None:
        print()
    n = len(images)
    res.maps = {i: (sums[i] / n).numpy() for i in res.layers}
    res.cls_maps = torch.cat(cls_rows).numpy() if cls_rows else None
    return res


# -- figures ----------------------------------------------------------------------------------
LAYER_PANEL = (3.0, 3.0)  # inches per query x key panel
CLS_PANEL = (2.2, 2.2)    # inches per image panel
HEADER = 0.7             # inches above the grid for the figure title


def layer_grid_shape(results: Sequence[AttentionResult], per_head: bool = False
                     ) -> Tuple[int, int]:
    """(rows, columns) of the query x key figure: a row per chosen layer, a column per model
    (per head and model with ``per_head``)."""
    rows = max([len(r.layers) for r in results] + [1])
    cols = 0
    for r in results:
        heads = next(iter(r.maps.values())).shape[0] if r.maps else 1
        cols += heads if per_head and r.has_attention else 1
    return rows, cols


def plot_attention_layers(results: Sequence[AttentionResult], out: str, per_head: bool = False,
                          dpi: int = 100) -> Tuple[int, int]:
    """PNG grid of average attention maps: rows = layers, columns = student | teacher (side by
    side). A model without attention gets an annotated empty column. Returns (rows, cols)."""
    rows, cols = layer_grid_shape(results, per_head)
    fig = new_figure(rows, cols, LAYER_PANEL, header=HEADER, dpi=dpi)
    gs = fig.add_gridspec(rows, cols)
    col = 0
    for r in results:
        heads = next(iter(r.maps.values())).shape[0] if r.maps else 1
        ncol = heads if per_head and r.has_attention else 1
        for row in range(rows):
            for h in range(ncol):
                ax = fig.add_subplot(gs[row, col + h])
                if not r.has_attention:
                    ax.set_axis_off()
                    if row == 0:
                        ax.set_title(r.label, fontsize=9)
                        ax.text(0.5, 0.5, 'no attention layers\n(a CNN): nothing\nto show',
                                ha='center', va='center', fontsize=10, transform=ax.transAxes)
                    continue
                if row >= len(r.layers):
                    ax.set_axis_off()
                    continue
                layer = r.layers[row]
                m = r.maps[layer]
                img = m[h] if per_head else m.mean(axis=0)
                im = ax.imshow(img, cmap='viridis', interpolation='nearest')
                what = f'head {h}' if per_head else f'mean of {m.shape[0]} heads'
                ax.set_title(f'{r.label}\nlayer {layer}, {what}', fontsize=8)
                ax.set_xlabel('key token', fontsize=7)
                ax.set_ylabel('query token', fontsize=7)
                ax.tick_params(labelsize=6)
                if r.num_extra:
                    for pos in (ax.axhline, ax.axvline):
                        pos(r.num_extra - 0.5, color='white', lw=0.6, alpha=0.8)
                cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
                cb.ax.tick_params(labelsize=6)
        col += ncol
    n = max(r.num_images for r in results)
    fig.suptitle(f'Average attention over {n} images: softmax(QK^T/sqrt(d)),\n'
                 'query (rows) x key (columns); white lines: cls/dist tokens | patch tokens',
                 fontsize=9)
    save_figure(fig, out)
    return rows, cols


def _upsample(grid_map: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    t = torch.as_tensor(grid_map, dtype=torch.float32)[None, None]
    up = F.interpolate(t, size=size, mode='bilinear', align_corners=False)[0, 0].numpy()
    lo, hi = up.min(), up.max()
    return (up - lo) / (hi - lo) if hi > lo else np.zeros_like(up)


def cls_grid_shape(results: Sequence[AttentionResult], num_show: int) -> Tuple[int, int]:
    """(rows, columns) of the heatmap figure: a row per image, input + a column per model."""
    return num_show, 1 + len(results)


def plot_cls_attention(images: ImageSet, results: Sequence[AttentionResult], out: str,
                       num_show: int = 8, dpi: int = 100) -> Tuple[int, int]:
    """PNG grid: each row an image; columns: the input, then each model's cls-token attention
    to the patches (heads averaged), upsampled and overlaid on the image (side by side)."""
    num_show = min(num_show, len(images))
    rows, cols = cls_grid_shape(results, num_show)
    fig = new_figure(rows, cols, CLS_PANEL, header=HEADER, dpi=dpi)
    gs = fig.add_gridspec(rows, cols)
    for i in range(num_show):
        img = images.display(i)
        size = img.shape[:2]
        cmap = 'gray' if img.ndim == 2 else None
        ax = fig.add_subplot(gs[i, 0])
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
        ax.set_axis_off()
        label = images.class_name(images.labels[i])
        ax.set_title(('input\n' if i == 0 else '') + f'label: {label}', fontsize=8)
        for c, r in enumerate(results, start=1):
            ax = fig.add_subplot(gs[i, c])
            ax.set_axis_off()
            head = ''
            if i == 0:
                if r.cls_kind == 'cls':
                    head = f'{r.label}\ncls -> patches, layer {r.cls_layer}\n'
                elif r.cls_kind == 'received':
                    head = (f'{r.label}\nNO cls token: attention\nreceived per patch, '
                            f'layer {r.cls_layer}\n')
                elif r.cls_kind == 'activation':
                    head = f'{r.label}\nCNN, NOT attention:\nmean |activation|, last stage\n'
                else:
                    head = f'{r.label}\n'
            pred = (f'pred: {images.class_name(r.preds[i])}' if i < len(r.preds) else '')
            ax.set_title(head + pred, fontsize=8)
            if r.cls_maps is None:
                ax.text(0.5, 0.5, 'no map', ha='center', va='center', transform=ax.transAxes)
                continue
            heat = _upsample(r.cls_maps[i].mean(axis=0), size)
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
            ax.imshow(heat, cmap='jet', alpha=0.5, vmin=0, vmax=1)
    fig.suptitle('Where the cls token looks: heads averaged,\nmin-max scaled per image, red = high',
                 fontsize=9)
    save_figure(fig, out)
    return rows, cols
