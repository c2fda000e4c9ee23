"""Extract the student from a distillation checkpoint.

    python tools/model_converters/extract_student.py work_dirs/x/epoch_300.pth \
        --classifier student.pth --backbone student_backbone.pth [--config DISTILL_CONFIG]

With --classifier, the student's own mmpretrain config is written beside it (student.py):
``python tools/test.py student.py student.pth`` then evaluates it, and mmpretrain's
``ImageClassificationInferencer('student.py', pretrained='student.pth')`` runs it. The
distillation config defaults to the one the runner stored in the checkpoint.
"""
import argparse
import os.path as osp

import mmkd  # noqa: F401
from mmkd.apis import extract_student
from mmkd.apis.export import student_config_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='checkpoint written by a distillation run')
    parser.add_argument('--classifier', help='output: student classifier checkpoint (mmpretrain)')
    parser.add_argument('--backbone', help='output: backbone-only checkpoint (mmdet/mmseg)')
    parser.add_argument('--config', help="the run's distillation config (default: the one "
                        'stored in the checkpoint)')
    args = parser.parse_args()
    if not (args.classifier or args.backbone):
        parser.error('give --classifier and/or --backbone')
    student, backbone = extract_student(args.checkpoint, args.classifier, args.backbone,
                                        config=args.config)
    for out, sd in ((args.classifier, student), (args.backbone, backbone)):
        if out:
            print(f'wrote {out}: {len(sd)} tensors, {sum(v.numel() for v in sd.values()):,} values')
    if args.classifier and osp.isfile(student_config_path(args.classifier)):
        print(f"wrote {student_config_path(args.classifier)}: the student's mmpretrain config")


if __name__ == '__main__':
    main()
