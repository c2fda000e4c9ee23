"""Extract the student from a distillation checkpoint.

    python tools/model_converters/extract_student.py work_dirs/x/epoch_300.pth \
        --classifier student.pth --backbone student_backbone.pth [--config DISTILL_CONFIG] \
        [--ema | --no-ema]

With --classifier, the student's own mmpretrain config is written beside it (student.py):
``python tools/test.py student.py student.pth`` then evaluates it, and mmpretrain's
``ImageClassificationInferencer('student.py', pretrained='student.pth')`` runs it. The
distillation config defaults to the one the runner stored in the checkpoint. For a run with
EMAHook, --ema exports the averaged student (checking that there is one), --no-ema the training
weights.
"""
import argparse
import os.path as osp

import mmkd  # noqa: F401
from mmkd.apis import extract_student
from mmkd.apis.export import student_config_path
from mmkd.utils import DamagedCheckpointError, check_checkpoint, reporting_damage


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='checkpoint written by a distillation run')
    parser.add_argument('--classifier', help='output: student classifier checkpoint (mmpretrain)')
    parser.add_argument('--backbone', help='output: backbone-only checkpoint (mmdet/mmseg)')
    parser.add_argument('--config', help="the run's distillation config (default: the one "
                        'stored in the checkpoint)')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--ema', action='store_true', default=None,
                         help='export the EMA (averaged) student of a run with EMAHook; an '
                         'error if the checkpoint has no EMA. (EMAHook saves the EMA as the '
                         "checkpoint's state_dict, so it is also what is exported by default)")
    weights.add_argument('--no-ema', dest='ema', action='store_false',
                         help='export the training weights of a run with EMAHook, not their '
                         'EMA (EMAHook keeps them in ema_state_dict)')
    args = parser.parse_args()
    if not (args.classifier or args.backbone):
        parser.error('give --classifier and/or --backbone')
    try:
        # a truncated/corrupted input: one line naming it, its size and what failed (the
        # CRCs are checked first: torch.load would load corrupted tensors without a word)
        if osp.isfile(args.checkpoint):
            check_checkpoint(args.checkpoint, 'distillation')
        with reporting_damage(args.checkpoint, 'distillation'):
            student, backbone = extract_student(args.checkpoint, args.classifier,
                                                args.backbone, config=args.config, ema=args.ema)
    except DamagedCheckpointError as e:
        parser.exit(1, f'{parser.prog}: error: {e}\n')
    for out, sd in ((args.classifier, student), (args.backbone, backbone)):
        if out:
            print(f'wrote {out}: {len(sd)} tensors, {sum(v.numel() for v in sd.values()):,} values')
    if args.classifier and osp.isfile(student_config_path(args.classifier)):
        print(f"wrote {student_config_path(args.classifier)}: the student's mmpretrain config")


if __name__ == '__main__':
    main()
