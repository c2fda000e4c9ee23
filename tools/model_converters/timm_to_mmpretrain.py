"""Convert a timm CNN classifier checkpoint to an mmpretrain teacher checkpoint.

The teacher layout is ``ImageClassifier(backbone=TIMMBackbone(model_name=ARCH), neck=
GlobalAveragePooling, head=LinearClsHead)``, as in configs/cskd/ and configs/deit/: timm's
classifier (``head.fc`` for RegNet, ``fc`` for ResNet, ...) becomes ``head.fc``, every other
tensor goes under ``backbone.timm_model.``. DeiT's / CSKD's RegNetY-16GF teacher::

    # timm's 'regnety_160.deit_in1k' weights, i.e.
    # https://dl.fbaipublicfiles.com/deit/regnety_160-a5fe301d.pth
    python tools/model_converters/timm_to_mmpretrain.py regnety_160-a5fe301d.pth \
        checkpoints/regnety_160_mmpretrain.pth --arch regnety_160 \
        --config configs/cskd/deit-t_regnety-16gf_8xb128_in1k.py   # optional: check it

The input is a ``.pth``/``.bin`` (a state dict, possibly under ``model`` or ``state_dict``, as in
DeiT's file) or a ``.safetensors`` file (timm's Hugging Face weights).
"""
import argparse
import re
from collections import OrderedDict

import torch


def load_timm_state_dict(path: str) -> dict:
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        state = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('model', 'state_dict'):  # DeiT saves {'model': ...}
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def timm_layout(arch: str):
    """``(final linear classifier's name, e.g. 'head.fc'; {key: shape})`` of timm's ``arch``."""
    import timm
    model = timm.create_model(arch, pretrained=False)
    fc = model.get_classifier()
    if not isinstance(fc, torch.nn.Linear):
        raise ValueError(f'{arch}: the classifier is a {type(fc).__name__}, not a Linear layer on '
                         'pooled features; CSKD cannot apply it per position')
    names = [n for n, m in model.named_modules() if m is fc]
    return names[0], {k: tuple(v.shape) for k, v in model.state_dict().items()}


def convert(state: dict, arch: str) -> OrderedDict:
    """timm keys -> mmpretrain ``ImageClassifier(TIMMBackbone, GAP, LinearClsHead)`` keys."""
    fc_name, expected = timm_layout(arch)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = [k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k]]
    if missing or unexpected or shapes:
        raise ValueError(f'the checkpoint is not a timm {arch}: {len(missing)} missing keys '
                         f'{missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}, '
                         f'{len(shapes)} of another shape {sorted(shapes)[:5]}')
    out = OrderedDict()
    for k, v in state.items():
        if k.startswith(fc_name + '.'):
            out['head.fc.' + k[len(fc_name) + 1:]] = v
        else:
            out['backbone.timm_model.' + k] = v
    return out


def check_against_config(state: dict, config: str) -> None:
    """Load ``state`` strictly into the teacher of ``config`` (raises on any mismatch)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmkd  # noqa: F401
    from mmkd.models.builder import build_model
    init_default_scope('mmkd')
    teacher = build_model(Config.fromfile(config).model.teacher, 'teacher')
    teacher.load_state_dict(state, strict=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='timm checkpoint (.pth, .bin or .safetensors)')
    parser.add_argument('dst', help='output: mmpretrain teacher checkpoint')
    parser.add_argument('--arch', default='regnety_160', help='timm architecture name')
    parser.add_argument('--config', help='a distillation config whose teacher must load it')
    args = parser.parse_args()
    state = convert(load_timm_state_dict(args.src), args.arch)
    if args.config:
        check_against_config(state, args.config)
    torch.save(dict(meta=dict(source=args.src, timm_arch=args.arch), state_dict=state), args.dst)
    print(f'wrote {args.dst}: {len(state)} tensors, '
          f'{sum(v.numel() for v in state.values()):,} values')


if __name__ == '__main__':
    main()
