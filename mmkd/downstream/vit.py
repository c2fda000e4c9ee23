"""A plain-ViT backbone and a ViTDet simple feature pyramid for MMDetection/MMSegmentation.

``PlainViT`` *is* mmpretrain's ``VisionTransformer`` (a subclass adding nothing but the dense
output), so a DeiT/ViT student exported by ``extract_student.py --backbone`` loads with no key
conversion: ``patch_embed.projection.*``, ``cls_token``, ``pos_embed``, ``layers.N.*``, ``ln1.*``.
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones import VisionTransformer

from .strict_init import is_strict_pretrained


class PlainViT(VisionTransformer):
    """mmpretrain's ``VisionTransformer`` returning feature maps of chosen blocks.

    Keep ``img_size`` at the classifier's pre-training size (224 for DeiT): the checkpoint's
    ``pos_embed`` then loads as is, and ``forward`` interpolates it (``interpolate_mode``,
    bicubic) to each input's patch grid, so any input size works (ViTDet does the same).
    The final norm ``ln1`` is part of the student and is applied to the last block's output.

    Args:
        out_indices (Sequence[int]): blocks whose outputs are returned (negative from the end).
        **kwargs: the arguments of mmpretrain's ``VisionTransformer``; ``out_type`` is fixed to
            ``'featmap'``.

    Shapes:
        input: (B, in_channels, H, W); H, W need not be multiples of ``patch_size`` (the patch
        embedding pads at the bottom/right corner).
        output: tuple, one (B, embed_dims, ceil(H / patch_size), ceil(W / patch_size)) per index.
    """

    def __init__(self, out_indices: Sequence[int] = (-1, ), out_type: str = 'featmap', **kwargs):
        if out_type != 'featmap':
            raise ValueError(f"PlainViT returns feature maps: out_type must be 'featmap', "
                             f'got {out_type!r}')
        # VisionTransformer rewrites negative indices in place: give it a list of its own
        super().__init__(out_indices=list(out_indices), out_type='featmap', **kwargs)

    def init_weights(self):
        if is_strict_pretrained(self.init_cfg):
            # VisionTransformer.init_weights would re-draw pos_embed after any init_cfg whose
            # type is not literally 'Pretrained'; every tensor comes from the checkpoint here.
            BaseModule.init_weights(self)
        else:
            super().init_weights()


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (ViTDet's pyramid norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, H, W, C) -> normalise C -> (B, C, H, W)
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2).contiguous()


def _norm(norm_cfg, channels: int) -> nn.Module:
    if norm_cfg is None:
        return nn.Identity()
    if norm_cfg['type'] == 'LN2d':
        # built here rather than registered: mmdet/mmseg scopes have no channels-first LN, and a
        # registered 'LN2d' could collide with one they add later
        return LayerNorm2d(channels, eps=norm_cfg.get('eps', 1e-6))
    return build_norm_layer(norm_cfg, channels)[1]


class SimpleFeaturePyramid(BaseModule):
    """ViTDet's simple feature pyramid: multi-scale maps from a plain ViT's last 1/16 map.

    Per scale factor, from the single input map: 4 -> two stride-2 transposed convs (norm +
    activation between), 2 -> one transposed conv, 1 -> identity, 0.5 -> 2x2 max-pool; each then
    a 1x1 conv + norm and a 3x3 conv + norm to ``out_channels``. Levels beyond the scale factors
    (``num_outs``) are stride-2 max-pools of the coarsest one, as FPN's ``add_extra_convs=False``
    (the P6 that Mask R-CNN's RPN anchors at stride 64 use).

    Args:
        in_channels (int): channels of the backbone map (embed_dims).
        out_channels (int): channels of every output level.
        scale_factors (Sequence[float]): from {4, 2, 1, 0.5}, finest first.
        num_outs (int): number of outputs, >= len(scale_factors).
        norm_cfg (dict): 'LN2d' (channels-first LayerNorm, ViTDet) or any mmcv norm.
        act_cfg (dict): activation between the two transposed convs of scale 4.

    Shapes:
        input: tuple of (B, in_channels, H, W) maps (stride s, e.g. 16); the last one is used.
        output: tuple of ``num_outs`` maps (B, out_channels, H * f, W * f) for f in
        scale_factors, then halved sizes.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5), num_outs: int = 5,
                 norm_cfg=dict(type='LN2d'), act_cfg=dict(type='GELU'),
                 init_cfg=dict(type='Kaiming', layer=['Conv2d', 'ConvTranspose2d'],
                               mode='fan_out', nonlinearity='relu', distribution='normal')):
        super().__init__(init_cfg)
        assert num_outs >= len(scale_factors), (num_outs, scale_factors)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.scale_factors, self.num_outs = tuple(scale_factors), num_outs
        self.stages = nn.ModuleList()
        for scale in self.scale_factors:
            dim = in_channels
            if scale == 4.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), _norm(norm_cfg, dim // 2),
                          build_activation_layer(act_cfg),
                          nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)]
                dim //= 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)]
                dim //= 2
            elif scale == 1.0:
                layers = []
            elif scale == 0.5:
                layers = [nn.MaxPool2d(2, stride=2)]
            else:
                raise ValueError(f'scale factor {scale} not in (4, 2, 1, 0.5)')
            # bias-free convs: the norm right after carries the shift
            layers += [nn.Conv2d(dim, out_channels, 1, bias=norm_cfg is None),
                       _norm(norm_cfg, out_channels),
                       nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=norm_cfg is None),
                       _norm(norm_cfg, out_channels)]
            self.stages.append(nn.Sequential(*layers))

    def forward(self, inputs: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
        x = inputs[-1]
        outs = [stage(x) for stage in self.stages]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
