"""ViTKD (Yang et al., "ViTKD: Feature-based Knowledge Distillation for Vision Transformers").

Shallow blocks are *mimicked*, the deep feature is *generated* from a randomly masked copy of
the student's; both on patch tokens only. Computation as in ``REFERENCE.md`` (ViTKD section).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from .base import DistillLoss


def _align(s_dims: int, t_dims: int) -> nn.Module:
    # equal widths need no aligner: an extra Linear would only add parameters to learn
    return nn.Identity() if s_dims == t_dims else nn.Linear(s_dims, t_dims, bias=True)


@MODELS.register_module()
class ViTKDLoss(DistillLoss):
    """ViTKD: ``L_lr + L_gen`` (the coefficients alpha and beta included).

    With ``low_l`` the raw output of block ``l`` (l = 0, 1) and ``high`` the output of the last
    block after the final LayerNorm, all with the leading cls/distillation tokens removed::

        L_lr  = alpha * sum_{l,b,n,d} (Linear_l(s_low_l) - t_low_l)^2 / B
        x     = Linear(s_high), its masked tokens replaced by a learnable mask token
        L_gen = beta * sum_{b,n,d} mask * (G(x) - t_high)^2 / (B * lambda)

    ``G`` is Conv3x3 -> ReLU -> Conv3x3 on the (h, w) token grid. The mask covers, in every
    sample, the ``N - int(N * (1 - lambda))`` tokens with the largest uniform noise. The Linear
    aligners are identities when the widths are equal. The two parts of the last call are
    kept, detached, in ``last_losses`` (for inspection; only their sum is returned).

    Taps to declare in the distiller, the same names on both models (mmpretrain
    ``VisionTransformer``/``DistilledVisionTransformer``/``DeiT3``)::

        low0='backbone.layers.0', low1='backbone.layers.1', high='backbone.ln1'

    ``backbone.ln1`` is the final norm (it exists when ``final_norm=True``, the default); the
    first two and the last block are taken whatever the depths of the two models.

    Args:
        s_dims (int): student width Ds.
        t_dims (int): teacher width Dt.
        alpha (float): weight of the mimicking loss. Default 3e-5.
        beta (float): weight of the generation loss. Default 3e-6.
        lambda_mask (float): fraction of masked tokens, in (0, 1]. Default 0.5.
        s_extra_tokens, t_extra_tokens (int, optional): leading non-patch tokens (cls,
            distillation) of each model, removed before the loss; default: the model's
            ``backbone.num_extra_tokens``, read in :meth:`setup`.
        grid (tuple[int, int], optional): the patch grid (h, w), N = h * w; default: the
            models' ``backbone.patch_resolution``, read in :meth:`setup`.

    Shapes: ``s_low0``, ``s_low1``, ``s_high``: (B, s_extra_tokens + N, Ds);
    ``t_low0``, ``t_low1``, ``t_high``: (B, t_extra_tokens + N, Dt); ``noise``: (B, N).
    """
    default_inputs = dict(
        s_low0='student.low0', s_low1='student.low1', s_high='student.high',
        t_low0='teacher.low0', t_low1='teacher.low1', t_high='teacher.high')

    def __init__(self,
                 s_dims: int,
                 t_dims: int,
                 alpha: float = 3e-5,
                 beta: float = 3e-6,
                 lambda_mask: float = 0.5,
                 s_extra_tokens: Optional[int] = None,
                 t_extra_tokens: Optional[int] = None,
                 grid: Optional[Sequence[int]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0 < lambda_mask <= 1:
            raise ValueError(f'ViTKDLoss: lambda_mask must be in (0, 1], got {lambda_mask}')
        if grid is not None and len(grid) != 2:
            raise ValueError(f'ViTKDLoss: grid must be (h, w), got {grid}')
        self.s_dims, self.t_dims = int(s_dims), int(t_dims)
        self.alpha, self.beta, self.lambda_mask = alpha, beta, lambda_mask
        self.s_extra_tokens = s_extra_tokens
        self.t_extra_tokens = t_extra_tokens
        self.grid: Optional[Tuple[int, int]] = tuple(int(g) for g in grid) if grid else None

        self.low_align = nn.ModuleList([_align(s_dims, t_dims) for _ in range(2)])
        self.high_align = _align(s_dims, t_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, t_dims))
        self.generator = nn.Sequential(
            nn.Conv2d(t_dims, t_dims, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(t_dims, t_dims, kernel_size=3, padding=1))
        self.last_losses = {}

    # -- what the models tell us ----------------------------------------------------------
    def setup(self, student: nn.Module, teacher: nn.Module) -> None:
        """Fill the number of extra tokens and the grid from the models' backbones, and check
        the declared widths, so that a wrong config fails at build time."""
        grids = {}
        for role, model, prefix in (('student', student, 's'), ('teacher', teacher, 't')):
            backbone = getattr(model, 'backbone', None)
            attr = f'{prefix}_extra_tokens'
            found = getattr(backbone, 'num_extra_tokens', None)
            if getattr(self, attr) is None:
                if found is None:
                    raise ValueError(
                        f"ViTKDLoss '{self.name}': the {role} has no backbone.num_extra_tokens; "
                        f'set {attr} (its number of cls/distillation tokens)')
                setattr(self, attr, int(found))
            elif found is not None and int(found) != getattr(self, attr):
                raise ValueError(
                    f"ViTKDLoss '{self.name}': {attr}={getattr(self, attr)} but the {role}'s "
                    f'backbone has {found} extra tokens')
            width = getattr(backbone, 'embed_dims', None)
            dims = getattr(self, f'{prefix}_dims')
            if width is not None and int(width) != dims:
                raise ValueError(f"ViTKDLoss '{self.name}': {prefix}_dims={dims} but the "
                                 f"{role}'s backbone has width {width}")
            if getattr(backbone, 'patch_resolution', None) is not None:
                grids[role] = tuple(int(g) for g in backbone.patch_resolution)
        if self.grid is None:
            if len(grids) == 2 and grids['student'] != grids['teacher']:
                raise ValueError(
                    f"ViTKDLoss '{self.name}': student and teacher token grids differ "
                    f"({grids['student']} vs {grids['teacher']}); the losses are per token")
            if not grids:
                raise ValueError(f"ViTKDLoss '{self.name}': no backbone.patch_resolution to "
                                 'read the token grid from; set grid=(h, w)')
            self.grid = next(iter(grids.values()))

    # -- checks ---------------------------------------------------------------------------
    def _require_layout(self) -> None:
        if self.grid is None or self.s_extra_tokens is None or self.t_extra_tokens is None:
            raise ValueError(f"ViTKDLoss '{self.name}': grid/extra tokens unknown: build it in "
                             'a distiller (setup) or pass grid, s_extra_tokens, t_extra_tokens')

    def check_inputs(self, s_low0: Tensor, s_low1: Tensor, s_high: Tensor,
                     t_low0: Tensor, t_low1: Tensor, t_high: Tensor,
                     noise: Optional[Tensor] = None) -> None:
        self._require_layout()
        h, w = self.grid
        feats = dict(s_low0=s_low0, s_low1=s_low1, s_high=s_high,
                     t_low0=t_low0, t_low1=t_low1, t_high=t_high)
        for arg, feat in feats.items():
            self.require_ndim(arg, feat, (3, ))
            dims, extra = ((self.s_dims, self.s_extra_tokens) if arg[0] == 's'
                           else (self.t_dims, self.t_extra_tokens))
            if feat.shape[2] != dims:
                raise self.shape_error(f'expected width {dims} (B, tokens, D)', arg, feat)
            if feat.shape[1] != extra + h * w:
                raise self.shape_error(
                    f'expected {extra} extra + {h}x{w} patch tokens = {extra + h * w} tokens',
                    arg, feat)
            if feat.shape[0] != s_high.shape[0]:
                raise self.shape_error('batch sizes differ', arg, feat, 's_high', s_high)
        if noise is not None and tuple(noise.shape) != (s_high.shape[0], h * w):
            raise self.shape_error(f'noise must be (B, {h * w})', 'noise', noise)

    # -- the loss -------------------------------------------------------------------------
    def num_masked(self, num_tokens: int) -> int:
        return num_tokens - int(num_tokens * (1 - self.lambda_mask))

    def random_mask(self, noise: Tensor) -> Tensor:
        """(B, N) noise -> (B, N) float mask, 1 at the ``num_masked(N)`` tokens of largest noise
        (highest argsort rank) of each sample, 0 elsewhere."""
        num_keep = noise.shape[1] - self.num_masked(noise.shape[1])
        order = noise.argsort(dim=1)
        return torch.zeros_like(noise, dtype=torch.float).scatter_(1, order[:, num_keep:], 1.0)

    def forward(self, s_low0: Tensor, s_low1: Tensor, s_high: Tensor,
                t_low0: Tensor, t_low1: Tensor, t_high: Tensor,
                noise: Optional[Tensor] = None) -> Tensor:
        """``noise`` (B, N) fixes the mask (tests); by default it is drawn from U(0, 1)."""
        self._require_layout()
        s_cut, t_cut = self.s_extra_tokens, self.t_extra_tokens
        h, w = self.grid
        B = s_high.shape[0]

        # Mimicking. Squared errors in float32: sums over B*N*D elements would overflow fp16.
        loss_lr = s_high.new_zeros((), dtype=torch.float)
        for align, s_low, t_low in zip(self.low_align, (s_low0, s_low1), (t_low0, t_low1)):
            diff = align(s_low[:, s_cut:]).float() - t_low[:, t_cut:].detach().float()
            loss_lr = loss_lr + diff.pow(2).sum()
        loss_lr = self.alpha * loss_lr / B

        # Generation
        x = self.high_align(s_high[:, s_cut:])  # (B, N, Dt)
        if noise is None:
            noise = torch.rand(B, h * w, device=x.device)
        mask = self.random_mask(noise).to(x.device)  # (B, N)
        x = torch.where(mask.unsqueeze(-1).bool(), self.mask_token.to(x.dtype), x)
        x = x.transpose(1, 2).reshape(B, self.t_dims, h, w)  # tokens are row-major in the grid
        gen = self.generator(x).flatten(2).transpose(1, 2)  # (B, N, Dt)
        sq_err = (gen.float() - t_high[:, t_cut:].detach().float()).pow(2).sum(dim=2)
        loss_gen = self.beta * (sq_err * mask).sum() / (B * self.lambda_mask)

        self.last_losses = dict(loss_lr=loss_lr.detach(), loss_gen=loss_gen.detach())
        self.log_vars = dict(mimic=self.last_losses['loss_lr'], generate=self.last_losses['loss_gen'])
        return loss_lr + loss_gen
