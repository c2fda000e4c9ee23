import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import DistillLoss


@MODELS.register_module()
class FitNetLoss(DistillLoss):
    """FitNets hint loss (Romero et al., 2015): ``MSE(adapter(s_feat), t_feat)``, mean.

    The adapter is a learnable 1x1 conv for feature maps (B, C, H, W) or a linear layer for
    token sequences (B, N, C); it is a distillation-only module, never exported with the student.

    Args:
        s_channels (int): student feature channels.
        t_channels (int): teacher feature channels.
        feat_type (str): ``'map'`` (B, C, H, W) or ``'tokens'`` (B, N, C).
    """
    default_inputs = dict(s_feat='student.feat', t_feat='teacher.feat')

    def __init__(self, s_channels: int, t_channels: int, feat_type: str = 'map', **kwargs):
        super().__init__(**kwargs)
        if feat_type not in ('map', 'tokens'):
            raise ValueError(f"FitNetLoss: feat_type must be 'map' or 'tokens', got {feat_type!r}")
        self.feat_type = feat_type
        self.channel_dim = 1 if feat_type == 'map' else -1
        self.s_channels = s_channels
        if feat_type == 'map':
            self.adapter = nn.Conv2d(s_channels, t_channels, kernel_size=1)
        else:
            self.adapter = nn.Linear(s_channels, t_channels)

    def check_inputs(self, s_feat: Tensor, t_feat: Tensor) -> None:
        ndim = 4 if self.feat_type == 'map' else 3
        self.require_ndim('s_feat', s_feat, (ndim, ))
        self.require_ndim('t_feat', t_feat, (ndim, ))
        if s_feat.shape[self.channel_dim] != self.s_channels:
            raise self.shape_error(f'the adapter expects {self.s_channels} student channels',
                                   's_feat', s_feat)
        adapted = list(s_feat.shape)
        adapted[self.channel_dim] = t_feat.shape[self.channel_dim]
        if tuple(adapted) != tuple(t_feat.shape):
            raise self.shape_error('the adapted student feature cannot match the teacher feature',
                                   's_feat', s_feat, 't_feat', t_feat)

    def forward(self, s_feat: Tensor, t_feat: Tensor) -> Tensor:
        return F.mse_loss(self.adapter(s_feat), t_feat)
