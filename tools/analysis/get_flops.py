"""Parameters and FLOPs of a distillation config: student, teacher, distillation modules, and
the teacher's share of a training step.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--json OUT.json]

FLOPs for one image, counted by MMEngine's FlopAnalyzer as OpenMMLab's get_flops tools do
(1 multiply-add = 1 FLOP; element-wise ops such as softmax are not counted). The model is built
with teacher_ckpt=None: weights do not change the counts. A training step is taken as the
teacher's forward plus ~3x the forward of what is trained (student and distillation modules:
forward + backward). A plain classifier config reports its model alone.
"""
import argparse
import json

from mmengine.config import DictAction

import mmkd  # noqa: F401  (registers mmkd types)
from mmkd.analysis.complexity import complexity, format_report


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='distillation config (or a plain classifier config)')
    p.add_argument('--shape', type=int, nargs='+', default=None, metavar='SIZE',
                   help="input height and width (one value: square); default: the config's "
                   'test pipeline crop/resize, else the backbone img_size, else 28 for MNIST '
                   'datasets, else 224')
    p.add_argument('--json', help='also write the numbers to this JSON file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = complexity(args.config, args.shape, args.cfg_options)
    print(format_report(result, args.config))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
