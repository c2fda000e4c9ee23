"""Feature transferability (Cross-Architecture KD, Fig. 1b/3b): student features mapped to the
teacher's feature space by a least-squares linear map fitted on split A; mean cosine
similarity with the teacher's features on split B, per layer pair. Markdown table + bar chart.

    python tools/analysis/transferability.py CONFIG CHECKPOINT [CHECKPOINT ...] \
        [--pairs backbone.layers.1:backbone.layer2 ...]

Several CHECKPOINTs (e.g. the student trained alone and distilled) are compared against the
same teacher, a bar per checkpoint. See docs/analysis.md.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='distillation config or plain classifier config')
    p.add_argument('checkpoints', nargs='+',
                   help="student checkpoint(s): distillation ('student.*' keys) or classifier")
    p.add_argument('--labels', nargs='+', help='legend names of the checkpoints')
    p.add_argument('--teacher', help='the teacher (config path or mmpretrain model name) '
                   "instead of the config's; needs --teacher-ckpt")
    p.add_argument('--teacher-ckpt', help="overrides the config's model.teacher_ckpt")
    p.add_argument('--pairs', nargs='+', default=None,
                   help="'student.module:teacher.module' pairs (default: the stages of both "
                   'backbones paired at equal relative depth)')
    p.add_argument('--mode', choices=['tokens', 'pooled'], default='tokens',
                   help='tokens: a sample per image position (default); pooled: per image')
    p.add_argument('--no-center', action='store_true',
                   help='do not centre the features (the mean then dominates the cosine)')
    p.add_argument('--fit-images', type=int, default=512, help='split A size (fit)')
    p.add_argument('--eval-images', type=int, default=256, help='split B size (cosine)')
    p.add_argument('--fit-split', default=None,
                   help="dataset split of A (default: 'train' when the dataset has splits)")
    p.add_argument('--eval-split', default=None,
                   help="dataset split of B (default: the config's test split)")
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--out', default='work_dirs/analysis/transferability.png', help='bar chart')
    p.add_argument('--table', default=None, help='also write the Markdown table here')
    p.add_argument('--dpi', type=int, default=100)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmkd  # noqa: F401
    from mmkd.analysis import transferability as T
    from mmkd.analysis.loading import load_config, load_student, load_teacher

    if args.labels and len(args.labels) != len(args.checkpoints):
        raise SystemExit(f'{len(args.labels)} --labels for {len(args.checkpoints)} checkpoints')
    cfg = load_config(args.config, args.cfg_options)
    teacher = load_teacher(cfg, args.teacher_ckpt, args.teacher)
    students = [load_student(cfg, ckpt) for ckpt in args.checkpoints]
    labels = args.labels or [osp.splitext(osp.basename(c))[0] for c in args.checkpoints]
    if len(set(labels)) != len(labels):
        labels = [f'{i}: {c}' for i, c in enumerate(args.checkpoints)]
    pairs = (T.parse_pairs(args.pairs) if args.pairs
             else T.default_pairs(students[0].model, teacher.model))
    fit, ev = T.split_images(cfg, args.fit_images, args.eval_images, args.fit_split,
                             args.eval_split)
    print(f"split A (fit): {len(fit)} images of {fit.source}; split B (cosine): {len(ev)} "
          f"images of {ev.source}; features: {args.mode}, "
          f"{'uncentred' if args.no_center else 'centred'}")
    results = {}
    for label, student in zip(labels, students):
        rows = T.measure(student, teacher, pairs, fit, ev, mode=args.mode,
                         center=not args.no_center, batch_size=args.batch_size, progress=True)
        for bad in T.underdetermined(rows):
            print(f'WARNING: {bad}: fewer fit samples than student feature dims; the map is '
                  'underdetermined: use more --fit-images')
        results[label] = rows
    table = T.markdown_table(results)
    print(f'\nteacher: {teacher.label} ({teacher.checkpoint})\n')
    print(table)
    if args.table:
        os.makedirs(osp.dirname(osp.abspath(args.table)), exist_ok=True)
        with open(args.table, 'w') as f:
            f.write(table + '\n')
        print(f'wrote {args.table}')
    T.plot_transferability(results, args.out, dpi=args.dpi,
                           title=f'Transferability to {teacher.label}\n({args.mode}, '
                           f"{'uncentred' if args.no_center else 'centred'}; "
                           f'fit on {len(fit)}, cosine on {len(ev)} images)')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    from mmkd.analysis.cli import run_cli
    run_cli(main, __file__)
