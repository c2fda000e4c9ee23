"""A real-image dense data set from Fashion-MNIST: real items resized and composed onto canvases,
written as a COCO instance set and an mmseg semantic set (docs/composed_fmnist.md).

No COCO or ADE20K is reachable offline; a composed set gives detection and segmentation heads real
image content (the items' own pixels), real occlusion and exact labels. The labels are derived
from the pixels actually pasted, so boxes, masks, areas and the semantic map agree by
construction.

Layout under ``out`` (``S`` = train / val)::

    S/000000.png                   canvas, 3-channel (grey replicated), uint8
    annotations/instances_S.json   COCO instances: bbox of the visible mask, RLE, area, iscrowd 0
    img_dir/S/000000.png           relative symlink to ../../S/000000.png (or a copy)
    ann_dir/S/000000.png           semantic map, 1-channel uint8: 0 background, 1..10 the classes
    meta.json                      the arguments and counts; written last (the set is complete)

Typical use::

    from mmkd.datasets.compose import coco_dataset_cfg, ensure_composed
    ensure_composed('data/composed_fmnist')          # generated on first use, then reused
    train_dataset = coco_dataset_cfg('data/composed_fmnist', 'train')
"""
import gzip
import json
import os
import os.path as osp
import shutil
import struct
from dataclasses import asdict, dataclass, fields
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_DATA_ROOT = osp.join(ROOT, 'data', 'fashion_mnist')
DEFAULT_OUT = osp.join(ROOT, 'data', 'composed_fmnist')

FORMAT = 'mmkd-composed-fmnist'
VERSION = 1
META_FILE = 'meta.json'
SPLITS = ('train', 'val')
# The IDX files each split draws its items from: val canvases only ever hold test-split items,
# so a model trained on the train canvases has never seen a val item.
IDX_FILES: Dict[str, Tuple[str, str]] = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'val': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
           'Bag', 'Ankle boot')
# matplotlib's tab10, as RGB uint8: distinct at a glance, one per class.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
# mmdet: category ids 1..10 map to labels 0..9. mmseg: label 0 is the background class.
COCO_METAINFO = dict(classes=CLASSES, palette=PALETTE)
SEG_METAINFO = dict(classes=('background', ) + CLASSES, palette=[(0, 0, 0)] + PALETTE)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ComposeConfig:
    """What a composed set is made of. Every field is recorded in ``meta.json``: the same
    config (and data root) gives the same bytes.

    Args:
        canvas: side of the square canvases in pixels.
        train_images / val_images: canvases per split.
        items: (min, max) items per canvas, inclusive; fewer end up on a canvas when an item
            finds no free place in ``tries`` attempts.
        scale: (min, max) side in pixels, inclusive, to which the 28x28 item is resized
            (bilinear) before its silhouette is taken.
        seed: base seed; canvas ``i`` of split ``s`` uses its own generator seeded with
            ``(seed, s, i)``, so a smaller set is a prefix of a larger one with the same seed.
        threshold: silhouette = resized pixels ``> threshold`` (of 255).
        hole_fraction: enclosed background holes of the silhouette up to this fraction of the
            item's ``side**2`` are filled (dark prints inside a garment, not bag handles).
        max_iou: a placement whose silhouette box has IoU above this with any earlier item's
            box is rejected.
        min_visible / min_pixels: a placement that would leave an earlier item with fewer
            visible pixels than ``max(min_pixels, min_visible * its silhouette area)`` is
            rejected, so no instance is ever occluded down to a sliver.
        tries: placements tried per item before it is left out.
        noise: background pixels are uniform integers in ``[0, noise]``; 0 = black.
        copy_images: ``img_dir/S`` holds copies of the canvases instead of relative symlinks.
    """
    canvas: int = 128
    train_images: int = 2000
    val_images: int = 500
    items: Tuple[int, int] = (2, 5)
    scale: Tuple[int, int] = (28, 64)
    seed: int = 0
    threshold: int = 20
    hole_fraction: float = 0.01
    max_iou: float = 0.1
    min_visible: float = 0.5
    min_pixels: int = 30
    tries: int = 30
    noise: int = 16
    copy_images: bool = False

    def __post_init__(self):
        # Ranges given as lists (JSON, argparse) are stored as tuples: configs compare equal.
        object.__setattr__(self, 'items', tuple(int(v) for v in self.items))
        object.__setattr__(self, 'scale', tuple(int(v) for v in self.scale))
        lo, hi = self.items
        if not 1 <= lo <= hi <= 255:  # instance ids of a canvas are kept in a uint8 map
            raise ValueError(f'items must be a range 1 <= min <= max <= 255, got {self.items}')
        lo, hi = self.scale
        if not 1 <= lo <= hi <= self.canvas:
            raise ValueError(f'scale must be a range 1 <= min <= max <= canvas '
                             f'({self.canvas}), got {self.scale}')
        if self.train_images < 0 or self.val_images < 0 or self.tries < 1:
            raise ValueError('train_images and val_images must be >= 0 and tries >= 1')
        if not 0 <= self.threshold < 255 or not 0 <= self.noise <= 255:
            raise ValueError('threshold must be in [0, 255) and noise in [0, 255]')

    def num_images(self, split: str) -> int:
        return self.train_images if split == 'train' else self.val_images


# ---------------------------------------------------------------------------------------------
# MNIST-format input


def read_idx(path: str) -> np.ndarray:
    """An unsigned-byte IDX file (plain or gzip by the ``.gz`` suffix) as a uint8 array of its
    dims, e.g. (N, 28, 28) for images and (N, ) for labels."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    # Magic: two zero bytes, the type code (0x08 = unsigned byte), the number of dims.
    if len(data) < 4 or data[:3] != b'\x00\x00\x08':
        raise ValueError(f'{path} is not an unsigned-byte IDX file (magic {data[:4].hex()})')
    ndim = data[3]
    dims = struct.unpack(f'>{ndim}I', data[4:4 + 4 * ndim])
    payload = memoryview(data)[4 + 4 * ndim:]
    if len(payload) != int(np.prod(dims)):
        raise ValueError(f'{path}: header says {dims} ({int(np.prod(dims))} bytes), '
                         f'payload has {len(payload)}')
    return np.frombuffer(payload, np.uint8).reshape(dims)


def idx_path(data_root: str, name: str) -> str:
    """The path of IDX file ``name`` in ``data_root``: plain, else ``.gz``."""
    for candidate in (osp.join(data_root, name), osp.join(data_root, name + '.gz')):
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(f'missing MNIST-format file {name} (or {name}.gz) in {data_root}')


def check_data_root(data_root: str) -> None:
    """Fail before any work, naming the first missing IDX file."""
    for names in IDX_FILES.values():
        for name in names:
            idx_path(data_root, name)


def load_split(data_root: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N, ) uint8 of the IDX split that ``split`` draws
    from (``train`` -> train-*, ``val`` -> t10k-*)."""
    image_file, label_file = (idx_path(data_root, n) for n in IDX_FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f'{image_file} {images.shape} and {label_file} {labels.shape} are not '
                         'N images with N labels')
    if len(images) == 0 or labels.max() >= len(CLASSES):
        raise ValueError(f'{label_file}: expected labels 0..{len(CLASSES) - 1} of a non-empty '
                         'set')
    return images, labels


# ---------------------------------------------------------------------------------------------
# Composition


def render_item(image: np.ndarray, side: int, threshold: int,
                hole_fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """The item resized to ``side x side`` (bilinear) and its silhouette.

    Args:
        image: (h, w) uint8, one IDX image.
    Returns:
        pixels (side, side) uint8 and silhouette (side, side) bool: ``pixels > threshold`` with
        the enclosed holes of at most ``hole_fraction * side**2`` pixels filled.
    """
    import cv2
    pixels = image if image.shape == (side, side) else cv2.resize(
        image, (side, side), interpolation=cv2.INTER_LINEAR)
    silhouette = pixels > threshold
    max_hole = hole_fraction * side * side
    if max_hole >= 1 and silhouette.any():
        # Background components of the padded inverse (4-connected, the dual of the 8-connected
        # foreground): the one holding the padding is outside the item, the others are holes.
        outside = np.pad(~silhouette, 1, constant_values=True).astype(np.uint8)
        _, comp, stats, _ = cv2.connectedComponentsWithStats(outside, connectivity=4)
        fill = stats[:, cv2.CC_STAT_AREA] <= max_hole
        fill[0] = False  # cv2's component 0 is the silhouette itself (zero pixels of ``outside``)
        fill[comp[0, 0]] = False
        silhouette |= fill[comp[1:-1, 1:-1]]
    return pixels, silhouette


def _box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of (T, 4) against (K, 4) boxes ``x0, y0, x1, y1`` (exclusive ends) -> (T, K)."""
    lt = np.maximum(boxes[:, None, :2], others[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    area_o = (others[:, 2:] - others[:, :2]).prod(-1)
    return inter / (area[:, None] + area_o[None, :] - inter)


def canvas_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one canvas: independent of the other canvases and of the set's size."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def compose_canvas(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
                   cfg: ComposeConfig) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """One canvas: items drawn from ``images``/``labels`` and pasted in turn, later over earlier.

    Returns:
        canvas (H, W) uint8; instance map (H, W) uint8, ``k`` where item ``k`` (1-based, paste
        order) is the topmost, 0 on the background; and one dict per pasted item:
        ``category_id`` (1..10), ``index`` (its IDX index), ``side`` (its resized side) and
        ``offset`` ([x, y] of the resized item's top-left on the canvas, may be negative: only
        the silhouette's tight crop must lie inside).
    """
    size = cfg.canvas
    canvas = (rng.integers(0, cfg.noise + 1, (size, size), dtype=np.uint8) if cfg.noise
              else np.zeros((size, size), np.uint8))
    inst = np.zeros((size, size), np.uint8)
    # Drawn up front, in a fixed order: the stream does not depend on which placements succeed.
    num = int(rng.integers(cfg.items[0], cfg.items[1] + 1))
    picks = rng.integers(0, len(images), num)
    sides = rng.integers(cfg.scale[0], cfg.scale[1] + 1, num)
    spots = rng.random((num, cfg.tries, 2))

    boxes = np.zeros((0, 4), np.int64)  # silhouette boxes of the pasted items
    areas: List[int] = []
    visible = np.zeros(0, np.int64)
    placed: List[dict] = []
    for pick, side, spot in zip(picks, sides, spots):
        pixels, sil = render_item(images[pick], int(side), cfg.threshold, cfg.hole_fraction)
        area = int(sil.sum())
        if area < cfg.min_pixels:
            continue
        rows, cols = np.flatnonzero(sil.any(1)), np.flatnonzero(sil.any(0))
        sy, sx, h, w = rows[0], cols[0], rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
        crop_sil = sil[sy:sy + h, sx:sx + w]
        crop_px = pixels[sy:sy + h, sx:sx + w]
        # Uniform top-left corners of the tight crop, all inside the canvas.
        xy = (spot * [size - w + 1, size - h + 1]).astype(np.int64)
        cand = np.concatenate([xy, xy + [w, h]], 1)
        ok = np.ones(len(cand), bool)
        if len(boxes):
            ok = (_box_iou(cand, boxes) <= cfg.max_iou).all(1)
        need = np.maximum(cfg.min_pixels, np.ceil(cfg.min_visible * np.asarray(areas)))
        for t in np.flatnonzero(ok):
            x, y = cand[t, :2]
            region = inst[y:y + h, x:x + w]
            covered = np.bincount(region[crop_sil], minlength=len(placed) + 1)[1:]
            if (visible - covered < need).any():
                continue  # would occlude an earlier item down to a sliver
            region[crop_sil] = len(placed) + 1
            canvas[y:y + h, x:x + w][crop_sil] = crop_px[crop_sil]
            visible = np.append(visible - covered, area)
            boxes = np.concatenate([boxes, cand[t:t + 1]])
            areas.append(area)
            placed.append(dict(category_id=int(labels[pick]) + 1, index=int(pick),
                               side=int(side), offset=[int(x - sx), int(y - sy)]))
            break
    return canvas, inst, placed


# ---------------------------------------------------------------------------------------------
# Writing


def _write_png(path: str, array: np.ndarray) -> None:
    import cv2
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write {path}')


def _encode(inst: np.ndarray, num: int) -> List[dict]:
    """COCO fields of instances 1..num of an instance map: visible mask as RLE, its tight bbox
    [x, y, w, h] and pixel area."""
    from pycocotools import mask as mask_util
    masks = np.asfortranarray(
        (inst[..., None] == np.arange(1, num + 1, dtype=np.uint8)).astype(np.uint8))
    rles = mask_util.encode(masks) if num else []
    out = []
    for k, rle in enumerate(rles):
        m = masks[..., k].astype(bool)
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        out.append(dict(
            bbox=[int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]),
                  int(rows[-1] + 1 - rows[0])],
            area=int(m.sum()),
            segmentation=dict(size=[int(v) for v in rle['size']],
                              counts=rle['counts'].decode('ascii'))))
    return out


def _write_split(tmp: str, split: str, images: np.ndarray, labels: np.ndarray,
                 cfg: ComposeConfig, progress: Optional[Progress], done: int,
                 total: int) -> Dict[str, int]:
    for d in (split, osp.join('img_dir', split), osp.join('ann_dir', split)):
        os.makedirs(osp.join(tmp, d), exist_ok=True)
    lut = np.zeros(256, np.uint8)  # instance id -> class of the semantic map
    coco_images, annotations = [], []
    for i in range(cfg.num_images(split)):
        canvas, inst, placed = compose_canvas(canvas_rng(cfg.seed, split, i), images, labels, cfg)
        name = f'{i:06d}.png'
        _write_png(osp.join(tmp, split, name), np.repeat(canvas[..., None], 3, axis=2))
        if cfg.copy_images:
            shutil.copyfile(osp.join(tmp, split, name), osp.join(tmp, 'img_dir', split, name))
        else:  # relative: the set can be moved or copied (cp -a, tar) as a whole
            os.symlink(osp.join('..', '..', split, name), osp.join(tmp, 'img_dir', split, name))
        lut[:] = 0
        lut[1:len(placed) + 1] = [p['category_id'] for p in placed]
        _write_png(osp.join(tmp, 'ann_dir', split, name), lut[inst])

        coco_images.append(dict(id=i + 1, file_name=name, width=cfg.canvas, height=cfg.canvas))
        for p, fields_ in zip(placed, _encode(inst, len(placed))):
            annotations.append(dict(
                id=len(annotations) + 1, image_id=i + 1, category_id=p['category_id'],
                iscrowd=0, **fields_,
                # Provenance: which real item, resized to which side, pasted where.
                source=dict(split=IDX_FILES[split][0].split('-')[0], index=p['index'],
                            side=p['side'], offset=p['offset'])))
        if progress is not None:
            progress(done + i + 1, total)

    coco = dict(
        info=dict(description=f'Fashion-MNIST items composed on {cfg.canvas}px canvases '
                  f'({split}; mmkd {FORMAT} v{VERSION})'),
        images=coco_images, annotations=annotations,
        categories=[dict(id=k + 1, name=c, supercategory='fashion')
                    for k, c in enumerate(CLASSES)])
    os.makedirs(osp.join(tmp, 'annotations'), exist_ok=True)
    with open(osp.join(tmp, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f, separators=(',', ':'))
    return dict(images=len(coco_images), instances=len(annotations))


def _request(data_root: str, cfg: ComposeConfig) -> dict:
    """What identifies a set: the format, the data root and the config (JSON-normalised)."""
    return json.loads(json.dumps(dict(format=FORMAT, version=VERSION,
                                      data_root=osp.abspath(data_root), config=asdict(cfg))))


def read_meta(out: str) -> Optional[dict]:
    path = osp.join(out, META_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def is_composed(out: str, data_root: str = DEFAULT_DATA_ROOT,
                cfg: Optional[ComposeConfig] = None) -> bool:
    """``out`` holds a complete set made with these arguments."""
    meta = read_meta(out)
    request = _request(data_root, cfg or ComposeConfig())
    return meta is not None and all(meta.get(k) == v for k, v in request.items())


def compose(out: str, data_root: str = DEFAULT_DATA_ROOT, cfg: Optional[ComposeConfig] = None,
            progress: Optional[Progress] = None) -> dict:
    """Make the set in ``out``, replacing an earlier composed set there; returns its meta.

    It is built in a sibling temporary directory and moved into place when complete, so a
    reader never sees a partial set and an interrupted run leaves ``out`` as it was. A
    non-empty ``out`` that is not a composed set (no ``meta.json``) is refused, not deleted.

    Args:
        progress: called as ``progress(done, total)`` after each canvas of both splits.
    """
    cfg = cfg or ComposeConfig()
    out = osp.abspath(out)
    check_data_root(data_root)
    if osp.isdir(out) and read_meta(out) is None and os.listdir(out):
        raise FileExistsError(f'{out} exists, is not empty and is not a composed set (no '
                              f'{META_FILE}): not overwriting it')
    tmp = f'{out.rstrip(os.sep)}.tmp-{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        total, counts = cfg.train_images + cfg.val_images, {}
        for split in SPLITS:
            images, labels = load_split(data_root, split)
            done = 0 if split == 'train' else cfg.train_images
            counts[split] = _write_split(tmp, split, images, labels, cfg, progress, done, total)
        meta = dict(_request(data_root, cfg), counts=counts)
        with open(osp.join(tmp, META_FILE), 'w') as f:  # last: marks the set complete
            json.dump(meta, f, indent=1, sort_keys=True)
        if osp.isdir(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def ensure_composed(out: str = DEFAULT_OUT, data_root: str = DEFAULT_DATA_ROOT,
                    progress: Optional[Progress] = None, **kwargs) -> dict:
    """The set in ``out``, made on first use: returns its meta without work when ``out`` holds
    one made with the same arguments, else (re)makes it with :func:`compose`.

    Args:
        **kwargs: fields of :class:`ComposeConfig`, e.g. ``train_images=200, seed=1``.
    """
    unknown = set(kwargs) - {f.name for f in fields(ComposeConfig)}
    if unknown:
        raise TypeError(f'unknown ComposeConfig fields: {sorted(unknown)}')
    cfg = ComposeConfig(**kwargs)
    if is_composed(out, data_root, cfg):
        return read_meta(out)
    return compose(out, data_root, cfg, progress)


# ---------------------------------------------------------------------------------------------
# Using the set


def coco_dataset_cfg(out: str, split: str, **kwargs) -> dict:
    """An mmdet ``CocoDataset`` config of a split (add ``pipeline``, ``filter_cfg``, ...)."""
    return dict(type='CocoDataset', data_root=out, ann_file=f'annotations/instances_{split}.json',
                data_prefix=dict(img=f'{split}/'), metainfo=COCO_METAINFO, **kwargs)


def seg_dataset_cfg(out: str, split: str, **kwargs) -> dict:
    """An mmseg ``BaseSegDataset`` config of a split: class 0 is the background, a real class
    (``reduce_zero_label=False``)."""
    return dict(type='BaseSegDataset', data_root=out,
                data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
                img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                metainfo=SEG_METAINFO, **kwargs)


def load_sample(out: str, split: str, index: int) -> Tuple[np.ndarray, List[dict], np.ndarray]:
    """Canvas (H, W) uint8, its annotations with decoded ``mask`` (H, W) bool, and the semantic
    map (H, W) uint8 of one image (``index`` 0-based); for figures and checks."""
    import cv2
    from pycocotools import mask as mask_util
    name = f'{index:06d}.png'
    canvas = cv2.imread(osp.join(out, split, name), cv2.IMREAD_UNCHANGED)[..., 0]
    semantic = cv2.imread(osp.join(out, 'ann_dir', split, name), cv2.IMREAD_UNCHANGED)
    with open(osp.join(out, 'annotations', f'instances_{split}.json')) as f:
        anns = [a for a in json.load(f)['annotations'] if a['image_id'] == index + 1]
    for a in anns:
        a['mask'] = mask_util.decode(a['segmentation']).astype(bool)
    return canvas, anns, semantic


def plot_examples(out: str, path: str, split: str = 'val', indices: Sequence[int] = range(6),
                  dpi: int = 100) -> str:
    """A PNG of canvases (top row), their instances (masks tinted by class, visible boxes,
    middle) and semantic maps (bottom), one column per canvas."""
    from matplotlib.patches import Patch, Rectangle

    from mmkd.analysis.plotting import new_figure, save_figure
    indices = list(indices)
    fig = new_figure(3, len(indices), (2.0, 2.0), header=0.6, dpi=dpi)
    axes = fig.subplots(3, len(indices), squeeze=False)
    colours = np.asarray(SEG_METAINFO['palette'], np.float64) / 255
    for col, i in enumerate(indices):
        canvas, anns, semantic = load_sample(out, split, i)
        grey = np.repeat(canvas[..., None] / 255, 3, axis=2)
        tinted = grey.copy()
        for a in anns:
            tinted[a['mask']] = 0.45 * grey[a['mask']] + 0.55 * colours[a['category_id']]
        for row, img in enumerate((grey, tinted, colours[semantic])):
            axes[row, col].imshow(img, interpolation='nearest')
            axes[row, col].set_axis_off()
        for a in anns:
            x, y, w, h = a['bbox']
            axes[1, col].add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, lw=1.2,
                                             ec=colours[a['category_id']]))
        axes[0, col].set_title(f'{split} {i:06d}: {len(anns)} items', fontsize=8)
    for row, label in enumerate(('canvas', 'instances (visible box, mask)', 'semantic map')):
        axes[row, 0].text(-0.06, 0.5, label, transform=axes[row, 0].transAxes, rotation=90,
                          ha='right', va='center', fontsize=8)
    fig.legend(handles=[Patch(color=colours[k], label=n)
                        for k, n in enumerate(SEG_METAINFO['classes'])],
               loc='outside lower center', ncol=6, fontsize=7, frameon=False)
    return save_figure(fig, path)
