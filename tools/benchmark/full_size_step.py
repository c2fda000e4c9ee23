"""One real training step of each full-size downstream config at its real input size.

    python tools/benchmark/full_size_step.py                      # the 8 configs/downstream/*.py
    python tools/benchmark/full_size_step.py --batch 0 --json work_dirs/full_size_step.json \\
        configs/downstream/upernet_r18-student_4xb4-160k_ade20k-512x512.py

tests/test_configs.py builds every full-size config and takes one loss step at 128 px; the
real steps take 15-64 s each on 2 shared cores (docs/downstream.md), too slow for all eight in
the test suite (tests/test_downstream_composed.py runs the two cheapest through :func:`step`).
This tool takes the real one: random weights (no exported student is needed), the config's own model, data
preprocessor (LSJ's 1024 x 1024 batch padding, the 512 x 512 crop size) and optimizer
(``model.train_step`` with the config's optim wrapper: forward, loss, backward, update), on a
synthetic batch of the recipe's input size built in memory:

- Mask R-CNN 1x (COCO): 1333 x 800 images, the largest a ``Resize((1333, 800), keep_ratio)``
  gives (padded to 1344 x 800 by the preprocessor), 80 classes;
- Mask R-CNN LSJ (ViTDet-like): 1024 x 1024, the LSJ crop (``BatchFixedSizePad``);
- UPerNet (ADE20K): 512 x 512 crops, 150 classes.

Each image holds a few boxes with masks (COCO) or a random label map (ADE20K). It prints and
(with --json) writes the seconds of the build and of each step (``--steps``; the first pays
one-off costs: allocator growth, oneDNN kernel selection).
"""
import argparse
import gc
import json
import os
import os.path as osp
import sys
import time
from glob import glob
from typing import Dict, List, Tuple

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: the recipes' input sizes (H, W): COCO 1x resizes into (1333, 800); LSJ crops 1024;
#: ADE20K crops 512
COCO_1X = (800, 1333)
LSJ = (1024, 1024)
ADE_CROP = (512, 512)


def input_size(cfg) -> Tuple[int, int]:
    """(H, W) of the config's training input, read from it where it says so."""
    if cfg.default_scope == 'mmseg':
        return tuple(cfg.model.data_preprocessor.get('size') or ADE_CROP)
    augments = cfg.model.data_preprocessor.get('batch_augments') or []
    for a in augments:
        if a.get('type') == 'BatchFixedSizePad':
            return tuple(a['size'])
    return COCO_1X


def det_batch(size: Tuple[int, int], n: int, num_classes: int, seed: int = 0) -> dict:
    """``n`` COCO-like samples of ``size`` (H, W): 3 boxes with box-shaped masks each."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    h, w = size
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                        scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
        x1 = rng.integers(0, w // 2, 3)
        y1 = rng.integers(0, h // 2, 3)
        bw = rng.integers(w // 16, w // 2, 3)
        bh = rng.integers(h // 16, h // 2, 3)
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
        masks = np.zeros((3, h, w), np.uint8)
        for i, (a, b, c, d) in enumerate(boxes.astype(int)):
            masks[i, b:d, a:c] = 1
        s.gt_instances = InstanceData(
            bboxes=torch.from_numpy(boxes),
            labels=torch.from_numpy(rng.integers(0, num_classes, 3)),
            masks=BitmapMasks(masks, h, w))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
                        for _ in range(n)], data_samples=samples)


def seg_batch(size: Tuple[int, int], n: int, num_classes: int, seed: int = 0) -> dict:
    """``n`` ADE20K-like samples of ``size``: random images, random label maps."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = size
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w), generator=g))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
                        for _ in range(n)], data_samples=samples)


def num_classes(cfg) -> int:
    if cfg.default_scope == 'mmseg':
        return cfg.model.decode_head.num_classes
    return cfg.model.roi_head.bbox_head.num_classes


def step(config: str, batch: int, steps: int = 1) -> Dict[str, object]:
    """Build ``config``'s model with random weights and take ``steps`` training steps."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope, init_default_scope

    import mmkd  # noqa: F401
    import mmkd.downstream  # noqa: F401
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None  # random weights: no exported student needed
    scope = cfg.default_scope
    size = input_size(cfg)
    n = batch or cfg.train_dataloader.batch_size
    t0 = time.perf_counter()
    with DefaultScope.overwrite_default_scope(scope):
        init_default_scope(scope)
        if scope == 'mmdet':
            from mmdet.registry import MODELS
        else:
            from mmseg.registry import MODELS
        torch.manual_seed(0)
        model = revert_sync_batchnorm(MODELS.build(cfg.model))  # SyncBN needs a process group
        model.init_weights()
        model.train()
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        make = det_batch if scope == 'mmdet' else seg_batch
        build = time.perf_counter() - t0
        times, losses = [], None
        for i in range(steps):
            data = make(size, n, num_classes(cfg), seed=i)
            t = time.perf_counter()
            losses = model.train_step(data, optim)
            times.append(time.perf_counter() - t)
            total = float(sum(v.item() for k, v in losses.items() if 'loss' in k))
            if not np.isfinite(total):
                raise RuntimeError(f'{config}: non-finite loss {losses}')
    params = sum(p.numel() for p in model.parameters())
    del model, optim
    gc.collect()
    return dict(config=osp.relpath(config, ROOT), input=list(size), batch=n,
                params_m=round(params / 1e6, 1), build_s=round(build, 1),
                step_s=[round(t, 1) for t in times], loss=round(total, 3))


def quiet() -> None:
    """MMEngine's INFO lines (every parameter's init, paramwise options) would bury the
    timings: warnings and errors only."""
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)


def main(argv: List[str] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('configs', nargs='*', help='default: every configs/downstream/*.py')
    p.add_argument('--batch', type=int, default=2,
                   help="images per step (default 2, the smallest per-GPU batch of these "
                   "recipes; 0: each config's own train_dataloader.batch_size)")
    p.add_argument('--steps', type=int, default=1, help='training steps per config')
    p.add_argument('--threads', type=int, help='torch threads (default: torch\'s)')
    p.add_argument('--json', help='write the results here')
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet()
    configs = args.configs or sorted(glob(osp.join(ROOT, 'configs', 'downstream', '*.py')))
    results = []
    print(f'{len(configs)} config(s), {torch.get_num_threads()} thread(s), batch '
          f'{args.batch or "of each config"}', flush=True)
    for config in configs:
        r = step(config, args.batch, args.steps)
        results.append(r)
        print(f"{r['config']}: input {r['input'][0]}x{r['input'][1]}, batch {r['batch']}, "
              f"{r['params_m']}M params: build {r['build_s']} s, step(s) "
              f"{', '.join(str(t) for t in r['step_s'])} s, loss {r['loss']}", flush=True)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(threads=torch.get_num_threads(), nproc=os.cpu_count(),
                           results=results), f, indent=1)
            f.write('\n')


if __name__ == '__main__':
    sys.exit(main())
