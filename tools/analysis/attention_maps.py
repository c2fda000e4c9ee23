"""Attention maps of a ViT student and/or teacher: average query x key maps per layer and the
cls-token attention over input images (PNG grids, student and teacher side by side).

    python tools/analysis/attention_maps.py CONFIG CHECKPOINT [--which both] [--layers 0 3]

CONFIG is a distillation config (student from model.student + the checkpoint's 'student.*'
keys, teacher from model.teacher + model.teacher_ckpt or --teacher-ckpt) or a plain
classifier config (its model + CHECKPOINT; --teacher/--teacher-ckpt adds a model to compare).
See docs/analysis.md.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='distillation config or plain classifier config')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help="distillation checkpoint (its 'student.*' keys) or classifier "
                   'checkpoint; not needed for --which teacher')
    p.add_argument('--which', choices=['student', 'teacher', 'both'], default=None,
                   help='models to show (default: both for a distillation config)')
    p.add_argument('--teacher-ckpt', help="overrides the config's model.teacher_ckpt")
    p.add_argument('--teacher', help='a model to compare with (config path or mmpretrain model '
                   "name) instead of the config's teacher; needs --teacher-ckpt")
    p.add_argument('--layers', type=int, nargs='+', default=None,
                   help='attention layers to average (negative: from the end); default all')
    p.add_argument('--teacher-layers', type=int, nargs='+', default=None,
                   help="the teacher's layers, when its depth differs (default: --layers)")
    p.add_argument('--cls-layer', type=int, default=-1,
                   help='layer of the cls-token heatmap (default: the last)')
    p.add_argument('--per-head', action='store_true',
                   help='one query x key panel per head instead of the mean over heads')
    p.add_argument('--num-images', type=int, default=64,
                   help='images averaged in the query x key maps')
    p.add_argument('--num-show', type=int, default=8, help='images in the cls heatmap grid')
    p.add_argument('--split', default=None, help="dataset split (default: the config's test one)")
    p.add_argument('--start', type=int, default=0, help='first image index')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--out-dir', default='work_dirs/analysis', help='where the PNGs go')
    p.add_argument('--dpi', type=int, default=100)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, e.g. model.teacher_ckpt=path.pth')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmkd  # noqa: F401
    from mmkd.analysis.attention import (attention_layers, collect_attention,
                                         plot_attention_layers, plot_cls_attention)
    from mmkd.analysis.loading import load_config, load_images, load_subjects

    cfg = load_config(args.config, args.cfg_options)
    subjects = load_subjects(cfg, args.checkpoint, args.which, args.teacher_ckpt, args.teacher)
    if not any(attention_layers(s.model) for s in subjects):
        sys.exit('no model to analyse has attention layers (' + ', '.join(
            s.label for s in subjects) + '): attention maps need a ViT')
    images = load_images(cfg, max(args.num_images, args.num_show), split=args.split,
                         start=args.start)
    results = []
    for s in subjects:
        layers = args.teacher_layers if s.role == 'teacher' and args.teacher_layers else args.layers
        r = collect_attention(s, images, layers, cls_layer=args.cls_layer,
                              batch_size=args.batch_size, progress=True)
        if not r.has_attention:
            print(f'NOTE: the {s.label} has no attention layers (a CNN): no query x key maps; '
                  'its heatmap column shows the mean |activation| of its last stage instead, '
                  'labelled as such.')
        results.append(r)
    layers_png = osp.join(args.out_dir, 'attention_layers.png')
    cls_png = osp.join(args.out_dir, 'cls_attention.png')
    rows, cols = plot_attention_layers(results, layers_png, per_head=args.per_head, dpi=args.dpi)
    print(f'wrote {layers_png}: {rows} layer(s) x {cols} column(s), average over '
          f'{len(images)} images')
    rows, cols = plot_cls_attention(images, results, cls_png, num_show=args.num_show,
                                    dpi=args.dpi)
    print(f'wrote {cls_png}: {rows} image(s) x {cols} column(s)')


if __name__ == '__main__':
    from mmkd.analysis.cli import run_cli
    run_cli(main, __file__)
