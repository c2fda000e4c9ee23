"""Turning a distillation checkpoint into checkpoints of the student alone."""
import os
import os.path as osp
from typing import Optional, Tuple

import torch

from mmkd.models.builder import checkpoint_state_dict, sub_state_dict


def extract_student(ckpt_path: str, classifier_out: Optional[str] = None,
                    backbone_out: Optional[str] = None) -> Tuple[dict, dict]:
    """Write (a) a student-only classifier checkpoint and (b) a backbone-only checkpoint.

    (a) loads into the student's mmpretrain config (``load_from`` / ``tools/test.py``);
    (b) has keys relative to the backbone, so an mmdet/mmseg backbone loads it with
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and no missing/unexpected keys.
    Distillation-only modules (loss adapters, projectors, mask tokens, discriminators) live
    outside ``student.`` in the distiller and so never reach either file.

    Returns:
        the two state dicts.
    """
    if not osp.isfile(ckpt_path):
        raise FileNotFoundError(f"distillation checkpoint '{ckpt_path}' does not exist")
    raw = torch.load(ckpt_path, map_location='cpu')  # weights_only: see mmkd.compat
    state = checkpoint_state_dict(ckpt_path, role='distillation', ckpt=raw)
    student = sub_state_dict(state, 'student.')
    if not student:
        raise ValueError(f"'{ckpt_path}' has no 'student.' keys: not a distillation checkpoint "
                         f'(first keys: {list(state)[:5]})')
    backbone = sub_state_dict(student, 'backbone.')
    if not backbone:
        raise ValueError(f"the student in '{ckpt_path}' has no 'backbone.' keys")
    meta = dict(source=osp.abspath(ckpt_path))
    if isinstance(raw, dict) and 'dataset_meta' in raw.get('meta', {}):
        meta['dataset_meta'] = raw['meta']['dataset_meta']
    for out, sd in ((classifier_out, student), (backbone_out, backbone)):
        if out:
            os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
            torch.save(dict(meta=meta, state_dict=sd), out)
    return student, backbone
