"""Extract the student from a distillation checkpoint.

    python tools/model_converters/extract_student.py work_dirs/x/epoch_300.pth \
        --classifier student.pth --backbone student_backbone.pth
"""
import argparse

import mmkd  # noqa: F401
from mmkd.apis import extract_student


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='checkpoint written by a distillation run')
    parser.add_argument('--classifier', help='output: student classifier checkpoint (mmpretrain)')
    parser.add_argument('--backbone', help='output: backbone-only checkpoint (mmdet/mmseg)')
    args = parser.parse_args()
    if not (args.classifier or args.backbone):
        parser.error('give --classifier and/or --backbone')
    student, backbone = extract_student(args.checkpoint, args.classifier, args.backbone)
    for out, sd in ((args.classifier, student), (args.backbone, backbone)):
        if out:
            print(f'wrote {out}: {len(sd)} tensors, {sum(v.numel() for v in sd.values()):,} values')


if __name__ == '__main__':
    main()
