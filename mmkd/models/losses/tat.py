"""TaT: target-aware transformer distillation (Lin et al., CVPR 2022).

The student feature is reconfigured by a one-to-all attention whose keys come from the teacher
(hence *target-aware*): every student position ``i`` gathers ``out_i = sum_j A_ij v_j`` with
``A = softmax_j(q_i . k_j)`` and the result is asked to match the teacher map (MSE). Large
(segmentation) maps use two cheaper forms: attention inside groups of patches (patch-group) and
attention between average-pooled anchor points (anchor-point).

Computation as in ``REFERENCE.md`` (TaT section): no ``1/sqrt(C)`` scaling of the scores (the
authors' code has none); learnable projections live in the loss (distillation-only modules,
never exported with the student).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import DistillLoss


def conv_bn(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Conv (no bias: the BN that follows has one) + BN, 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels))


def one_to_all(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """One-to-all target-aware attention.

    Args:
        q, k: (B, C, h, w) queries (student) and keys (teacher).
        v: (B, Cv, h, w) values (student).

    Returns:
        (B, Cv, h, w): ``out_i = sum_j softmax_j(q_i . k_j) v_j`` over the h*w positions.
    """
    B, _, h, w = q.shape
    scores = torch.bmm(q.flatten(2).transpose(1, 2), k.flatten(2))  # (B, hw_i, hw_j)
    attn = scores.softmax(dim=-1)  # over the teacher's positions j
    out = torch.bmm(attn, v.flatten(2).transpose(1, 2))  # (B, hw, Cv)
    return out.transpose(1, 2).reshape(B, v.size(1), h, w)


def group_patches(x: Tensor, n: int, m: int, heads: int) -> Tensor:
    """Unfold a map into n x m patches and stack each group of patches along channels.

    Patches are numbered row-major (``p = i * m + j``); group ``h`` holds patches
    ``h*g .. h*g + g - 1`` (``g = n*m / heads``), patch ``p`` taking channels
    ``(p mod g) * C .. (p mod g) * C + C - 1`` of its group.

    Args:
        x: (B, C, H, W), with H divisible by n and W by m.

    Returns:
        (B * heads, g * C, H / n, W / m).
    """
    B, C, H, W = x.shape
    ph, pw = H // n, W // m
    x = x.reshape(B, C, n, ph, m, pw).permute(0, 2, 4, 1, 3, 5)  # (B, n, m, C, ph, pw)
    return x.reshape(B * heads, (n * m // heads) * C, ph, pw)


@MODELS.register_module()
class TaTLoss(DistillLoss):
    """One-to-all TaT (classification): ``MSE(one_to_all(phi_q(f_s), psi(f_t), phi_v(f_s)), f_t)``.

    ``phi_q``, ``phi_v``: Conv(k x k, no bias) + BN from the student's to the teacher's channels
    (3x3 in the authors' classification code); ``psi``: identity, or a learnable 1x1 conv + BN on
    the teacher feature (``key_proj=True``, the segmentation code). The teacher map itself is the
    target. The value has no coefficient of its own: configs set ``loss_weight`` (0.2 alone,
    0.1 with KD on ImageNet).

    Args:
        s_channels (int): student feature channels C_s.
        t_channels (int): teacher feature channels C_t.
        proj_kernel (int): kernel of the student projections (3 classification, 1 segmentation).
        key_proj (bool): learnable 1x1 conv + BN on the teacher feature for the keys.

    Shapes: ``s_feat`` (B, C_s, h, w), ``t_feat`` (B, C_t, h, w).
    """
    default_inputs = dict(s_feat='student.feat', t_feat='teacher.feat')

    def __init__(self, s_channels: int, t_channels: int, proj_kernel: int = 3,
                 key_proj: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.s_channels, self.t_channels = s_channels, t_channels
        self.q_proj = conv_bn(s_channels, t_channels, proj_kernel)
        self.v_proj = conv_bn(s_channels, t_channels, proj_kernel)
        self.k_proj = conv_bn(t_channels, t_channels, 1) if key_proj else nn.Identity()

    def check_inputs(self, s_feat: Tensor, t_feat: Tensor) -> None:
        self.require_ndim('s_feat', s_feat, (4, ))
        self.require_ndim('t_feat', t_feat, (4, ))
        if s_feat.size(1) != self.s_channels or t_feat.size(1) != self.t_channels:
            raise self.shape_error(f'expected {self.s_channels} student and {self.t_channels} '
                                   'teacher channels', 's_feat', s_feat, 't_feat', t_feat)
        if s_feat.shape[0] != t_feat.shape[0] or s_feat.shape[2:] != t_feat.shape[2:]:
            raise self.shape_error('student and teacher maps need the same batch and grid',
                                   's_feat', s_feat, 't_feat', t_feat)

    def project(self, s_feat: Tensor, t_feat: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """q, k, v: (B, C_t, h, w) each."""
        return self.q_proj(s_feat), self.k_proj(t_feat), self.v_proj(s_feat)

    def forward(self, s_feat: Tensor, t_feat: Tensor) -> Tensor:
        q, k, v = self.project(s_feat, t_feat)
        return F.mse_loss(one_to_all(q, k, v), t_feat)


@MODELS.register_module()
class TaTSegLoss(TaTLoss):
    """TaT for large maps (segmentation): ``alpha * (beta * L_pg + gamma * L_anchor)``.

    - patch-group ``L_pg``: q, k, v and f_t are unfolded into ``n x m`` patches, grouped
      ``g = n*m/heads`` patches per group (stacked along channels, see :func:`group_patches`),
      one-to-all inside each group.
    - anchor-point ``L_anchor``: q, k, v and f_t are average-pooled to an ``anchors`` grid
      (kernel = stride = (H/a_h, W/a_w)), then one-to-all.

    Reduction, as the authors' code: each term is, per sample, the mean squared error over
    that sample's elements; the per-sample means are summed and divided by B. Every sample has
    as many elements, so this is the mean over all elements, whatever C, H and W are (a sum
    over elements would be C*H*W times larger, 8.4M x at 2048 x 64 x 64, and break alpha,
    beta, gamma).

    A term whose coefficient is 0 is not computed. Projections default to the segmentation
    code's: 1x1 conv + BN for q and v, 1x1 conv + BN on the teacher feature for k. The value
    includes alpha, beta, gamma (configs keep ``loss_weight=1``); ``log_vars`` holds the two
    terms before the coefficients (``pg``, ``anchor``).

    Args:
        s_channels, t_channels: see :class:`TaTLoss`.
        patches (tuple): (n, m) patches along H and W.
        heads (int): number of patch groups; must divide n*m.
        anchors (tuple): (a_h, a_w) anchor grid; must divide (H, W).
        alpha, beta, gamma (float): the coefficients (VOC: 0.1, 1, 0.4; COCO-Stuff: 0.6, 1, 1).

    Shapes: ``s_feat`` (B, C_s, H, W), ``t_feat`` (B, C_t, H, W).
    """

    def __init__(self, s_channels: int, t_channels: int, patches: Sequence[int] = (16, 16),
                 heads: int = 64, anchors: Optional[Sequence[int]] = (32, 32),
                 alpha: float = 0.1, beta: float = 1.0, gamma: float = 0.4,
                 proj_kernel: int = 1, key_proj: bool = True, **kwargs):
        super().__init__(s_channels, t_channels, proj_kernel=proj_kernel, key_proj=key_proj,
                         **kwargs)
        self.patches = tuple(patches)
        self.heads = heads
        self.anchors = tuple(anchors) if anchors is not None else None
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        n, m = self.patches
        if (n * m) % heads:
            raise ValueError(f'TaTSegLoss: heads={heads} must divide the {n}x{m} patches')
        if self.anchors is None and gamma:
            raise ValueError('TaTSegLoss: gamma != 0 needs anchors=(a_h, a_w)')

    def check_inputs(self, s_feat: Tensor, t_feat: Tensor) -> None:
        super().check_inputs(s_feat, t_feat)
        H, W = t_feat.shape[2:]
        n, m = self.patches
        if self.beta and (H % n or W % m):
            raise self.shape_error(f'a {H}x{W} map cannot be cut into {n}x{m} equal patches',
                                   't_feat', t_feat)
        if self.gamma and (H % self.anchors[0] or W % self.anchors[1]):
            raise self.shape_error(f'a {H}x{W} map cannot be pooled to {self.anchors} anchors',
                                   't_feat', t_feat)

    def forward(self, s_feat: Tensor, t_feat: Tensor) -> Tensor:
        B = t_feat.size(0)
        q, k, v = self.project(s_feat, t_feat)
        total = t_feat.new_zeros(())
        self.log_vars = {}
        if self.beta:
            n, m = self.patches
            out = one_to_all(*(group_patches(x, n, m, self.heads) for x in (q, k, v)))
            target = group_patches(t_feat, n, m, self.heads)
            l_pg = (out - target).pow(2).reshape(B, -1).mean(dim=1).sum() / B
            total = total + self.beta * l_pg
            self.log_vars['pg'] = l_pg.detach()
        if self.gamma:
            H, W = t_feat.shape[2:]
            kernel = (H // self.anchors[0], W // self.anchors[1])
            qa, ka, va, ta = (F.avg_pool2d(x, kernel, kernel) for x in (q, k, v, t_feat))
            l_anchor = (one_to_all(qa, ka, va) - ta).pow(2).reshape(B, -1).mean(dim=1).sum() / B
            total = total + self.gamma * l_anchor
            self.log_vars['anchor'] = l_anchor.detach()
        return self.alpha * total
