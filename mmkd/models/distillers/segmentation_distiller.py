from typing import Dict, List, Optional

import torch
from mmengine.registry import DefaultScope
from torch import Tensor

from mmkd.registry import MODELS
from .base_distiller import BaseDistiller


@MODELS.register_module()
class SegmentationDistiller(BaseDistiller):
    """Distils an mmseg segmentor (student) from another (teacher), e.g. two ``EncoderDecoder``.

    Everything but how the models run comes from :class:`BaseDistiller`: the teacher is frozen
    and hidden, taps are module paths, losses are mmkd ``DistillLoss`` es, checkpoints hold
    ``student.*`` (and loss modules) only, so :func:`mmkd.apis.extract_student` applies.

    - student and teacher are built in the ``mmseg`` scope (:attr:`model_scope`); the config
      entries are dicts, config paths or ``'mmseg::...'`` package configs;
    - the data preprocessor is mmseg's ``SegDataPreProcessor`` (the type may be omitted), run
      once for both models;
    - the student's task loss is its own ``loss(inputs, data_samples)`` (decode + auxiliary);
    - the teacher runs ``extract_feat`` only, plus its decode head when a loss uses a teacher tap
      inside ``decode_head`` (e.g. ``logits``); its auxiliary head never runs;
    - ``predict`` is the student's.

    Built-in tap: ``logits`` = the decode head's classifier ``decode_head.conv_seg`` output,
    (B, K, H/4, W/4) for DeepLabV3+ (the head itself is called as ``self.forward`` inside
    ``loss``, so a hook on ``decode_head`` would not fire). Data source: ``data.gt_sem_seg``
    (B, H, W) long.

    Configs run with ``default_scope='mmseg'`` and import mmkd with ``custom_imports``; the model
    is ``dict(_scope_='mmkd', type='SegmentationDistiller', ...)``: ``'mmkd.SegmentationDistiller'``
    does not resolve from mmseg (MMEngine resolves ``scope.Type`` only among the root registry's
    direct children, and mmkd's registry is a child of mmpretrain's). Loss types resolve in the
    ``mmkd`` scope.
    """
    model_scope = 'mmseg'
    builtin_taps = dict(logits='decode_head.conv_seg')
    data_sources = ('gt_sem_seg', )

    def __init__(self, *args, data_preprocessor: Optional[dict] = None, **kwargs):
        pre = {} if data_preprocessor is None else data_preprocessor
        if isinstance(pre, dict):
            # as mmseg's configs: the top-level data_preprocessor may carry no type
            pre = {'type': 'SegDataPreProcessor', **pre}
            with DefaultScope.overwrite_default_scope('mmseg'):
                pre = MODELS.build(pre)
        # Under a runner the default scope is 'mmseg'; loss types are mmkd's.
        with DefaultScope.overwrite_default_scope('mmkd'):
            super().__init__(*args, data_preprocessor=pre, **kwargs)
        self._teacher_head_needed = any(
            kind == 'teacher' and self.teacher_taps.paths[key].startswith('decode_head')
            for args in self._loss_args.values() for kind, key in args.values())

    def teacher_forward(self, inputs: Tensor, data_samples) -> None:
        feats = self.teacher.extract_feat(inputs)
        if self._teacher_head_needed:
            self.teacher.decode_head(feats)

    def student_loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        return self.student.loss(inputs, data_samples)

    def data_inputs(self, data_samples, t_records) -> Dict[str, Tensor]:
        return dict(gt_sem_seg=torch.stack([s.gt_sem_seg.data.squeeze(0) for s in data_samples]))

    def predict(self, inputs: Tensor, data_samples: Optional[List] = None) -> List:
        return self.student.predict(inputs, data_samples)
