"""CSKD: Cumulative Spatial Knowledge Distillation, CNN teacher -> ViT student.

Computation: the CSKD section of the project's REFERENCE.md; usage: docs/cskd.md."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from ..heads.cskd_head import dist_head_logits
from .base import DistillLoss


def last_tensor(x):
    """A backbone's tuple of outputs (or a neck's tuple input) -> its last element."""
    return x[-1] if isinstance(x, (tuple, list)) else x


def student_grid(num_patches: int, t_grid: Sequence[int]) -> Tuple[int, int]:
    """The student's patch grid (f*h, f*w) for N patch tokens and the teacher grid (h, w).

    The tokens carry no grid, but both models see the same image, so the student's grid is the
    teacher's scaled by one integer factor f (2 for ViT/16 vs a stride-32 CNN: 14x14 vs 7x7).
    Raises ``ValueError`` when N is not f^2 * h * w for an integer f >= 1.
    """
    h, w = t_grid
    f = math.isqrt(num_patches // (h * w)) if num_patches >= h * w else 0
    if f < 1 or f * f * h * w != num_patches:
        raise ValueError(f'the student has {num_patches} patch tokens, which is no grid '
                         f'(f*{h}) x (f*{w}) for an integer f: the student patch grid must be an '
                         f'integer multiple of the teacher grid {h}x{w}')
    return f * h, f * w


def pool_to_grid(s_dense: Tensor, t_grid: Sequence[int]) -> Tensor:
    """Average-pool (B, K, H, W) to the teacher grid (B, K, h, w); kernel = stride = (H/h, W/w).

    CSKD's alignment (appendix A.1): 2x2, stride 2 for 14x14 -> 7x7; here any integer ratio,
    also different per axis. Raises ``ValueError`` when a ratio is not an integer.
    """
    H, W = s_dense.shape[-2:]
    h, w = t_grid
    if H % h or W % w:
        raise ValueError(f'the student grid {H}x{W} is not an integer multiple of the teacher '
                         f'grid {h}x{w}')
    if (H, W) == (h, w):
        return s_dense
    return F.avg_pool2d(s_dense, kernel_size=(H // h, W // w))


def teacher_classifier(teacher: nn.Module, who: str = 'CSKDLoss') -> nn.Linear:
    """The teacher's classifier as one ``nn.Linear`` on globally average-pooled features.

    Only then is ``fc(mean_pos(feat)) == mean_pos(fc(feat))``: the classifier can be applied at
    every position of the last feature map, and the mean of those dense predictions is the
    teacher's own logits. Supported: mmpretrain ``ImageClassifier`` with
    ``neck=GlobalAveragePooling`` and ``head=LinearClsHead`` (any backbone, e.g. ``ResNet`` or
    ``TIMMBackbone(features_only=False)``, whose last output is the feature map).
    """
    from mmpretrain.models.heads import LinearClsHead
    from mmpretrain.models.necks import GlobalAveragePooling

    neck, head = getattr(teacher, 'neck', None), getattr(teacher, 'head', None)
    gap = getattr(neck, 'gap', None)
    pooled = (type(neck) is GlobalAveragePooling and isinstance(gap, nn.AdaptiveAvgPool2d)
              and gap.output_size in (1, (1, 1)))
    linear = (isinstance(head, LinearClsHead) and isinstance(getattr(head, 'fc', None), nn.Linear)
              and type(head).pre_logits is LinearClsHead.pre_logits
              and type(head).forward is LinearClsHead.forward)
    if not (pooled and linear):
        raise ValueError(
            f"{who}: the teacher's classifier must be one linear layer on globally average-pooled "
            'features (an ImageClassifier with neck=GlobalAveragePooling and head=LinearClsHead), '
            "so that it can be applied at every position of the teacher's last feature map; got "
            f'{type(teacher).__name__} with neck {type(neck).__name__} and head '
            f'{type(head).__name__}. A timm CNN: backbone=TIMMBackbone(model_name=..., '
            'features_only=False), neck=GlobalAveragePooling, head=LinearClsHead (docs/cskd.md).')
    return head.fc


def student_dist_head(student: nn.Module, who: str = 'CSKDLoss') -> nn.Module:
    """The student's DeiT head, whose ``layers.head_dist`` CSKD applies to every patch token."""
    head = getattr(student, 'head', None)
    if not isinstance(getattr(getattr(head, 'layers', None), 'head_dist', None), nn.Linear):
        raise ValueError(f'{who}: the student needs a distillation-token head with a linear '
                         f'layers.head_dist (CSKDClsHead / DistillTokenClsHead), got '
                         f'{type(head).__name__}')
    return head


@MODELS.register_module()
class CSKDLoss(DistillLoss):
    """Cumulative Spatial Knowledge Distillation: dense teacher predictions supervise the student's
    patch tokens, fused with the teacher's global prediction as training goes on.

    - Teacher: its classifier (``head.fc``) at every position of its last feature map
      ``t_feat`` (B, C, h, w) -> ``t_dense`` (B, K, h, w) (a 1x1 conv; no second teacher
      forward); ``t_global = t_dense.mean((2, 3))`` (B, K), the teacher's logits by linearity.
    - Student: its distillation head (``head.layers.head_dist``, the same as the distillation
      token's) on every patch token of ``s_tokens`` (B, E + N, D) (the final LayerNorm's output,
      the E extra tokens stripped) -> (B, N, K) -> (B, K, H, W) -> average-pooled to (B, K, h, w).
    - Cumulative Knowledge Fusion, mixed as logits:
      ``target = r * t_dense + (1 - r) * t_global[..., None, None]`` with ``r = ckf_ratio``, set
      every iteration by :class:`~mmkd.engine.DistillScheduleHook` (``r = 1 - epoch/max_epochs``
      for ``type='linear', start_value=1, end_value=0``; ``cos``/``x2`` likewise).
    - ``mode='hard'`` (default): ``CE(s_dense, argmax_K(target))``, mean over B*h*w;
      ``mode='soft'``: ``KL(log_softmax(s/T), log_softmax(target/T), sum, log_target) * T^2 / B``.

    The teacher side is detached; gradients reach the student's backbone and distillation head.
    The DeiT term on the distillation token (against ``t_global`` = the teacher's logits) is a
    separate :class:`DeiTLoss` in the config.

    Args:
        mode (str): ``'hard'`` or ``'soft'``.
        tau (float): temperature T of ``soft``.
        ckf_ratio (float): r, the weight of the dense target; 1 = dense only, 0 = global only.
            Without a schedule hook it stays at this value.
        num_extra_tokens (int, optional): leading non-patch tokens of ``s_tokens``; default: the
            student backbone's ``num_extra_tokens`` (2 for ``DistilledVisionTransformer``).
        **kwargs: ``loss_weight`` (CSKD's w, 1 in the paper), ``inputs``.

    Inputs: ``s_tokens`` (B, E + N, D), e.g. a student tap ``tokens='backbone.ln1'``;
    ``t_feat`` (B, C, h, w) or a tuple ending with it, e.g. a teacher tap ``feat='backbone'``.
    """
    default_inputs = dict(s_tokens='student.tokens', t_feat='teacher.feat')

    def __init__(self, mode: str = 'hard', tau: float = 1.0, ckf_ratio: float = 1.0,
                 num_extra_tokens: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if mode not in ('hard', 'soft'):
            raise ValueError(f"CSKDLoss: mode must be 'hard' or 'soft', got {mode!r}")
        self.mode = mode
        self.tau = float(tau)
        self.ckf_ratio = float(ckf_ratio)
        self.num_extra_tokens = num_extra_tokens

    def setup(self, student: nn.Module, teacher: nn.Module) -> None:
        who = f"CSKDLoss '{self.name}'"
        self.bind('s_head', student_dist_head(student, who))
        self.bind('t_fc', teacher_classifier(teacher, who))
        if self.num_extra_tokens is None:
            n = getattr(getattr(student, 'backbone', None), 'num_extra_tokens', None)
            if n is None:
                raise ValueError(f'{who}: cannot tell how many extra (cls/dist) tokens precede '
                                 'the patch tokens: set num_extra_tokens')
            self.num_extra_tokens = int(n)
        s_k, t_k = self.s_head.layers.head_dist.out_features, self.t_fc.out_features
        if s_k != t_k:
            raise ValueError(f'{who}: the student has {s_k} classes and the teacher {t_k}')

    # -- the two dense predictions ----------------------------------------------------------
    def teacher_dense(self, t_feat: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, K, h, w): the teacher's fc at every position, as a 1x1 conv."""
        with torch.no_grad():  # the teacher only gives targets
            w, b = self.t_fc.weight, self.t_fc.bias
            return F.conv2d(t_feat, w.to(t_feat.dtype)[:, :, None, None],
                            None if b is None else b.to(t_feat.dtype))

    def student_dense(self, s_tokens: Tensor, t_grid: Sequence[int]) -> Tensor:
        """(B, E + N, D) -> (B, K, h, w): the distillation head on each patch token, pooled."""
        patches = s_tokens[:, self.num_extra_tokens:]  # (B, N, D), row-major over the grid
        B, N = patches.shape[:2]
        H, W = student_grid(N, t_grid)
        s_dense = dist_head_logits(self.s_head, patches)  # (B, N, K)
        s_dense = s_dense.transpose(1, 2).reshape(B, -1, H, W)
        return pool_to_grid(s_dense, t_grid)

    # -- the loss ---------------------------------------------------------------------------
    def check_inputs(self, s_tokens, t_feat) -> None:
        s_tokens, t_feat = last_tensor(s_tokens), last_tensor(t_feat)
        self.require_ndim('s_tokens', s_tokens, (3, ))
        self.require_ndim('t_feat', t_feat, (4, ))
        if s_tokens.size(0) != t_feat.size(0):
            raise self.shape_error('different batch sizes', 's_tokens', s_tokens, 't_feat', t_feat)
        if t_feat.size(1) != self.t_fc.in_features:
            raise self.shape_error(f"the teacher's classifier takes {self.t_fc.in_features} "
                                   'channels', 't_feat', t_feat)
        d = self.s_head.layers[0].in_features  # head or pre_logits: the token width
        if s_tokens.size(2) != d:
            raise self.shape_error(f"the student's distillation head takes {d}-wide tokens",
                                   's_tokens', s_tokens)
        num_patches = s_tokens.size(1) - self.num_extra_tokens
        try:
            student_grid(num_patches, t_feat.shape[-2:])
        except ValueError as e:
            raise self.shape_error(f'{e} (after stripping {self.num_extra_tokens} extra tokens)',
                                   's_tokens', s_tokens, 't_feat', t_feat) from None

    def forward(self, s_tokens: Tensor, t_feat: Tensor) -> Tensor:
        s_tokens, t_feat = last_tensor(s_tokens), last_tensor(t_feat)
        t_dense = self.teacher_dense(t_feat)                        # (B, K, h, w)
        t_global = t_dense.mean(dim=(2, 3), keepdim=True)           # (B, K, 1, 1)
        s_dense = self.student_dense(s_tokens, t_dense.shape[-2:])  # (B, K, h, w)
        r = float(self.ckf_ratio)
        target = (r * t_dense + (1.0 - r) * t_global).to(s_dense.dtype)
        if self.mode == 'hard':
            return F.cross_entropy(s_dense, target.argmax(dim=1))  # mean over B*h*w
        T = self.tau
        kl = F.kl_div(F.log_softmax(s_dense / T, dim=1), F.log_softmax(target / T, dim=1),
                      reduction='sum', log_target=True)
        return kl * T * T / s_dense.size(0)
