"""Compose real Fashion-MNIST items onto canvases: a COCO instance set and an mmseg semantic set
(docs/composed_fmnist.md). Reuses the set when --out holds one made with the same arguments.

    python tools/dataset_converters/compose_fmnist.py --out data/composed_fmnist \\
        --train-images 2000 --val-images 500 --plot docs/composed_fmnist_examples.png
"""
import argparse
import re
import sys
import time
from typing import Tuple

from mmkd.datasets.compose import (DEFAULT_DATA_ROOT, DEFAULT_OUT, ComposeConfig, compose,
                                   is_composed, plot_examples)

DEFAULTS = ComposeConfig()


def int_range(text: str) -> Tuple[int, int]:
    """``A-B``, ``A..B``, ``A,B`` or ``A`` (= ``A-A``) as an inclusive (min, max)."""
    m = re.fullmatch(r'\s*(\d+)\s*(?:(?:-|\.\.|,)\s*(\d+)\s*)?', text)
    if not m:
        raise argparse.ArgumentTypeError(f'expected a range like 2-5 or 28..64, got {text!r}')
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    if lo > hi:
        raise argparse.ArgumentTypeError(f'empty range {text!r}')
    return lo, hi


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                   help='directory with the four MNIST-format IDX files (plain or .gz)')
    p.add_argument('--out', default=DEFAULT_OUT)
    p.add_argument('--canvas', type=int, default=DEFAULTS.canvas, help='square side, pixels')
    p.add_argument('--train-images', type=int, default=DEFAULTS.train_images,
                   help='canvases of items of the IDX training split')
    p.add_argument('--val-images', type=int, default=DEFAULTS.val_images,
                   help='canvases of items of the IDX test split')
    p.add_argument('--items-per-image', type=int_range, default=DEFAULTS.items, metavar='A-B',
                   help='items per canvas, inclusive')
    p.add_argument('--scale', type=int_range, default=DEFAULTS.scale, metavar='A..B',
                   help='side in pixels an item is resized to (bilinear), inclusive')
    p.add_argument('--seed', type=int, default=DEFAULTS.seed)
    p.add_argument('--threshold', type=int, default=DEFAULTS.threshold,
                   help='silhouette: resized pixels above this (of 255)')
    p.add_argument('--hole-fraction', type=float, default=DEFAULTS.hole_fraction,
                   help='fill enclosed silhouette holes up to this fraction of side**2')
    p.add_argument('--max-iou', type=float, default=DEFAULTS.max_iou,
                   help='reject a placement whose box IoU with an earlier box exceeds this')
    p.add_argument('--min-visible', type=float, default=DEFAULTS.min_visible,
                   help='reject a placement leaving an earlier item less visible than this '
                   'fraction of its silhouette')
    p.add_argument('--tries', type=int, default=DEFAULTS.tries,
                   help='placements tried per item before it is left out')
    p.add_argument('--noise', type=int, default=DEFAULTS.noise,
                   help='background: uniform integers in [0, NOISE]; 0 = black')
    p.add_argument('--copy-images', action='store_true',
                   help='img_dir/ holds copies instead of relative symlinks')
    p.add_argument('--force', action='store_true', help='remake even if up to date')
    p.add_argument('--plot', metavar='PNG', help='also draw 6 val canvases with their '
                   'instances and semantic maps into this PNG')
    return p.parse_args(argv)


class _Progress:
    """A tqdm bar on a terminal; elsewhere (logs, CI) a line every 10 %."""

    def __init__(self):
        self.bar, self.next_pct, self.start = None, 10, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit='canvas')
            self.bar.update(done - self.bar.n)
            if done == total:
                self.bar.close()
        elif 100 * done >= self.next_pct * total:
            print(f'{done}/{total} canvases ({100 * done // total} %, '
                  f'{time.perf_counter() - self.start:.1f} s)', flush=True)
            self.next_pct = 100 * done // total + 10


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        cfg = ComposeConfig(
            canvas=args.canvas, train_images=args.train_images, val_images=args.val_images,
            items=args.items_per_image, scale=args.scale, seed=args.seed,
            threshold=args.threshold, hole_fraction=args.hole_fraction, max_iou=args.max_iou,
            min_visible=args.min_visible, tries=args.tries, noise=args.noise,
            copy_images=args.copy_images)
    except ValueError as e:
        sys.exit(f'error: {e}')
    if not args.force and is_composed(args.out, args.data_root, cfg):
        print(f'{args.out} is up to date (meta.json records the same arguments)')
    else:
        start = time.perf_counter()
        try:
            meta = compose(args.out, args.data_root, cfg, progress=_Progress())
        except (FileNotFoundError, FileExistsError, ValueError) as e:
            sys.exit(f'error: {e}')
        counts = ', '.join(f'{s}: {c["images"]} images, {c["instances"]} instances'
                           for s, c in meta['counts'].items())
        print(f'wrote {args.out} in {time.perf_counter() - start:.1f} s ({counts})')
    if args.plot:
        print(f'wrote {plot_examples(args.out, args.plot)}')


if __name__ == '__main__':
    main()
