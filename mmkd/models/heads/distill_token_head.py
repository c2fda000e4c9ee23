from typing import List, Tuple

import torch
from mmpretrain.models.heads import DeiTClsHead

from mmkd.registry import MODELS


@MODELS.register_module()
class DistillTokenClsHead(DeiTClsHead):
    """DeiT head for students that *train* with a distillation token.

    mmpretrain's ``DeiTClsHead`` averages the two heads even in training, which cannot train a
    distilled DeiT. Here, in training, ``forward`` returns the class-token logits (the student's
    own loss is computed on them) while the distillation-token logits are produced by
    ``layers.head_dist``, where the distiller taps them (``dist_logits``). At inference both
    heads are averaged, as in DeiT.

    Shapes: feats[-1] = (cls_token, dist_token), each (B, C) -> logits (B, K).
    """

    def forward(self, feats: Tuple[List[torch.Tensor]]) -> torch.Tensor:
        cls_token, dist_token = self.pre_logits(feats)
        cls_score = self.layers.head(cls_token)
        dist_score = self.layers.head_dist(dist_token)
        if self.training:
            return cls_score
        return (cls_score + dist_score) / 2
