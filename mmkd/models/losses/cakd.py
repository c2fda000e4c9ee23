"""Cross-Architecture KD (Liu et al., ECCV 2022): Transformer teacher -> CNN student.

The student's feature map is projected twice, into the teacher's attention space (partially
cross attention projector, PCA) and into its token space (group-wise linear projector, GL); a
token discriminator adds a multi-view adversarial term. Computation as in ``REFERENCE.md``
(Cross-Architecture KD section); what is ours (reductions, grid alignment, the discriminator's
granularity) is stated in :class:`CAKDLoss` and ``docs/cakd.md``.

The discriminator is *trained* by :class:`~mmkd.models.distillers.CrossArchDistiller`
(``discriminator_loss``, its own optimizer, every ``d_interval`` iterations); this loss only
*uses* it, with its parameters detached, so the student's adversarial term moves the student and
projectors and never the discriminator.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from torch import Tensor
from torch.func import functional_call

from mmkd.registry import MODELS
from .base import DistillLoss


def split_qkv(qkv: Tensor, num_heads: int, extra_tokens: int = 0) -> Tuple[Tensor, Tensor, Tensor]:
    """The output of an attention block's ``qkv`` Linear -> Q, K, V with heads averaged.

    Layout as mmpretrain's ``MultiheadAttention`` and ``WindowMSA`` reshape it:
    ``(B, L, 3 * D) -> (B, L, 3, heads, D / heads)``. The ``extra_tokens`` leading tokens (cls,
    distillation) are removed.

    Returns:
        q, k, v: each (B, L - extra_tokens, D / heads).
    """
    B, L, C = qkv.shape
    qkv = qkv.reshape(B, L, 3, num_heads, C // (3 * num_heads)).mean(dim=3)
    qkv = qkv[:, extra_tokens:]
    return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``softmax(q k^T / sqrt(d)) v``; q, k, v: (B, N, d) -> (B, N, d)."""
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    return scores.softmax(dim=-1) @ v


def value_relation(v: Tensor) -> Tensor:
    """``v v^T / sqrt(d)``; (B, N, d) -> (B, N, N)."""
    return v @ v.transpose(1, 2) / math.sqrt(v.shape[-1])


class PCAProjector(nn.Module):
    """Partially cross attention projector, the student side: three 3x3 convs give Q_S, K_S,
    V_S from the student map (``kernel_size=1``: a per-pixel Linear, the public code's).

    Shapes: (B, c, h, w) -> three (B, h*w, d), tokens in row-major grid order (the order of
    the teacher's patch tokens).
    """

    def __init__(self, in_channels: int, head_dims: int, kernel_size: int = 3):
        super().__init__()
        # kernel_size=1 is the public code's Linear ``to_qkv`` applied to every pixel
        pad = kernel_size // 2
        self.q = nn.Conv2d(in_channels, head_dims, kernel_size, padding=pad)
        self.k = nn.Conv2d(in_channels, head_dims, kernel_size, padding=pad)
        self.v = nn.Conv2d(in_channels, head_dims, kernel_size, padding=pad)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return tuple(conv(x).flatten(2).transpose(1, 2) for conv in (self.q, self.k, self.v))


def window_ids(grid: Sequence[int], window: int) -> Tensor:
    """(h*w,) id of the ``window x window`` neighbourhood of every grid position, row-major.

    Windows tile the grid from the top-left corner, so the last row/column of windows is
    smaller when the side is not a multiple of ``window`` (14 = 4 + 4 + 4 + 2).
    """
    h, w = grid
    per_row = -(-w // window)
    rows = torch.arange(h) // window
    cols = torch.arange(w) // window
    return (rows[:, None] * per_row + cols[None, :]).flatten()


class GroupWiseLinear(nn.Module):
    """Group-wise linear projector: one ``Linear(c, D)`` per ``window x window`` neighbourhood
    of the grid, shared by its positions, with dropout on the student's pixels.

    Vectorised: the positions of each window are gathered into a padded (windows, window^2)
    table, every window is multiplied by its own weight in one einsum, and the results are
    gathered back to grid order. The padding rows read a zero pixel and are never read back.

    Shapes: (B, N = h*w, c) -> (B, N, D).
    """

    def __init__(self, in_channels: int, out_channels: int, grid: Sequence[int],
                 window: int = 4, dropout: float = 0.1):
        super().__init__()
        self.grid = tuple(int(g) for g in grid)
        self.window = int(window)
        group = window_ids(self.grid, self.window)  # (N,)
        num_groups = int(group.max()) + 1
        num_tokens = group.numel()
        # slot of every position inside its window, in row-major order of the grid
        order = torch.argsort(group, stable=True)
        counts = torch.bincount(group, minlength=num_groups)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(group)
        slot[order] = torch.arange(num_tokens) - starts[group[order]]
        table = torch.full((num_groups, self.window * self.window), num_tokens, dtype=torch.long)
        table[group, slot] = torch.arange(num_tokens)
        self.register_buffer('group', group, persistent=False)
        self.register_buffer('slot', slot, persistent=False)
        self.register_buffer('table', table, persistent=False)
        self.num_groups = num_groups

        self.dropout = nn.Dropout(dropout)
        self.weight = nn.Parameter(torch.empty(num_groups, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(num_groups, out_channels))
        # nn.Linear's default initialisation, per group
        bound = 1 / math.sqrt(in_channels)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(x)
        padded = torch.cat([x, x.new_zeros(x.shape[0], 1, x.shape[2])], dim=1)
        windows = padded[:, self.table]  # (B, G, P, c)
        out = torch.einsum('bgpc,gcd->bgpd', windows, self.weight.to(x.dtype))
        out = out + self.bias.to(x.dtype)[None, :, None]
        return out[:, self.group, self.slot]  # (B, N, D)


def init_projector(module: nn.Module, how: str) -> nn.Module:
    """``module`` with its weights initialised as ``how`` says (see ``CAKDLoss.proj_init``)."""
    if how == 'trunc_normal':
        for name, param in module.named_parameters():
            if name.endswith('bias'):
                nn.init.zeros_(param)
            else:
                nn.init.trunc_normal_(param, std=0.02, a=-0.04, b=0.04)
    return module


class TokenDiscriminator(nn.Module):
    """Three FC layers scoring every token: (B, N, D) -> (B, N, 1) logits of "teacher"."""

    def __init__(self, in_dims: int, hidden_dims: int = 256):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dims, hidden_dims), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden_dims, hidden_dims), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden_dims, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def last_attention(model: nn.Module) -> Tuple[Optional[str], Optional[nn.Module]]:
    """The last sub-module that computes Q/K/V with a ``qkv`` Linear and has ``num_heads``:
    ``layers.<last>.attn`` of an mmpretrain ViT, ``stages.<last>.blocks.<last>.attn.w_msa`` of
    a Swin."""
    found = (None, None)
    for name, module in model.named_modules():
        if isinstance(getattr(module, 'qkv', None), nn.Linear) and hasattr(module, 'num_heads'):
            found = (name, module)
    return found


def swin_last_grid(backbone: nn.Module) -> Optional[Tuple[int, int]]:
    """The token grid of the last stage of an mmpretrain Swin built for its ``img_size``
    (patch grid halved, rounding up, by every stage that downsamples), or None if
    ``backbone`` is not Swin-like."""
    size = getattr(getattr(backbone, 'patch_embed', None), 'init_out_size', None)
    stages = getattr(backbone, 'stages', None)
    if size is None or stages is None:
        return None
    h, w = (int(v) for v in size)
    for stage in list(stages)[:-1]:
        if getattr(stage, 'downsample', None) is not None:
            h, w = -(-h // 2), -(-w // 2)
    return h, w


@MODELS.register_module()
class CAKDLoss(DistillLoss):
    """Cross-Architecture KD: ``L_proj1 + L_proj2 + lambda_adv * L_MVG`` (paper's Eq. 10).

    Inputs: the student map ``s_feat`` (B, c, hs, ws); the output of the teacher's last
    attention block's ``qkv`` Linear ``t_qkv`` (B, T + N, 3 * D); the teacher's tokens after its
    final norm ``t_tokens`` (B, T + N, D), with T leading cls/distillation tokens (removed) and
    N = h * w patch tokens on the teacher grid. With ``d = D / t_heads``:

    - grid alignment: if (hs, ws) != (h, w) the student map is resized to the teacher grid
      (bilinear, ``align_corners=False``) before both projectors (``align='resize'``, default),
      or it is an error (``align='error'``).
    - PCA: ``Q_S, K_S, V_S = conv3x3_{q,k,v}(s)`` (B, N, d); ``Q_T, K_T, V_T``: the teacher's,
      heads averaged, cls removed, detached. In training each element of Q_S, K_S, V_S is
      replaced by the teacher's with probability ``sub_prob`` (independently per element and
      per matrix) -> ``gQ, gK, gV``; in eval nothing is replaced.
      ``L_proj1 = mean((Attn_T - PAttn_S)^2) + mean((V_T V_T^T/sqrt(d) - V_S V_S^T/sqrt(d))^2)``
      with ``Attn_T = softmax(Q_T K_T^T/sqrt(d)) V_T``, ``PAttn_S = softmax(gQ gK^T/sqrt(d)) gV``.
      The value-relation term uses the student's own V_S (substitution is defined for PAttn_S;
      a substituted V_S would take gradient from only half of its elements).
    - GL: ``h'_S = GL(s)`` (B, N, D): one Linear(c, D) per ``window x window`` neighbourhood
      (edge windows smaller), dropout ``gl_dropout`` on the input pixels.
      ``L_proj2 = mean((h_T - h'_S)^2)``.
    - adversarial: a 3-FC discriminator scores every token; with ``z = D(h'_S)`` (logits),
      ``L_MVG = mean_{b,n} log(1 - sigmoid(z))`` — *with* gradient to h'_S (hence to the GL
      projector and the student) and, by calling D with detached parameters, none to D.

    - ``proj1='scores'`` (the authors' public code, not the paper): the PCA term compares the
      pre-softmax maps and the unscaled value relations, without substitution,
      ``L_proj1 = w_a * mean((Q_T K_T^T/sqrt(d) - Q_S K_S^T/sqrt(d))^2)
      + w_v * mean((V_T V_T^T - V_S V_S^T)^2)`` with ``(w_a, w_v) = proj1_weights``
      (the code's 0.2, 0.05); ``pca_kernel=1`` makes the projector its Linear ``to_qkv``.

    Reductions: every ``||.||^2`` of the paper is a mean over all its elements (B*N*d,
    B*N*N, B*N*D), which keeps the terms O(1) whatever the widths and grid; the adversarial
    terms average over the B*N tokens (each token is a discriminator sample).

    The discriminator's own loss, :meth:`discriminator_loss`, is
    ``L_MAD = mean_{b,n} [-log D(h_T) - log(1 - D(h'_S))]`` on the tokens of the last
    ``forward``, detached (the student gets no gradient from it).

    The parts of the last call are kept, detached, in ``log_vars`` (``proj1``, ``proj2``,
    ``mvg``); the distiller logs them as ``cakd.proj1`` etc.

    Args:
        s_channels (int): channels c of the student map.
        t_dims (int): teacher width D (tokens and Q/K/V, all heads).
        t_heads (int): teacher heads of the tapped attention block; d = D / t_heads. Checked in
            :meth:`setup` against the teacher's last attention block.
        grid (tuple[int, int], optional): teacher token grid (h, w); default: the teacher's
            ``backbone.patch_resolution`` (ViT) or the grid of its last stage (Swin: (7, 7) at
            224 px).
        t_extra_tokens (int, optional): leading non-patch tokens of the teacher; default its
            ``backbone.num_extra_tokens`` or 0 (Swin).
        align (str): ``'resize'`` or ``'error'`` when the student grid differs.
        window (int): GL neighbourhood side. Default 4 (16 Linears on 14x14).
        gl_dropout (float): dropout of the GL projector. Default 0.1.
        sub_prob (float): probability of taking the teacher's element in PAttn_S. Default 0.5.
        lambda_adv (float): weight lambda of L_MVG. Default 1.0.
        d_hidden (int): hidden width of the discriminator. Default 256.
        proj1 (str): ``'attention'`` (the paper: ``softmax(QK^T/sqrt(d))V`` and ``VV^T/sqrt(d)``)
            or ``'scores'`` (the public code: ``QK^T/sqrt(d)`` and ``VV^T``, no substitution).
        proj1_weights (tuple[float, float]): weights of the attention and value-relation parts
            of L_proj1. Default (1, 1) (the paper); the public code uses (0.2, 0.05).
        pca_kernel (int): kernel of the PCA projector's convs: 3 (the paper) or 1 (the public
            code's per-token Linear).
        proj_init (str): the projectors' (PCA, GL) initialisation: ``'default'`` (PyTorch's
            kaiming-uniform, as the public code's ``nn.Linear``/``nn.Conv2d``) or
            ``'trunc_normal'`` (weights N(0, 0.02) truncated at ±2σ, biases 0: timm's ViT
            Linear init), a probe of #16.
    """
    default_inputs = dict(s_feat='student.feat', t_qkv='teacher.qkv', t_tokens='teacher.tokens')

    def __init__(self,
                 s_channels: int,
                 t_dims: int,
                 t_heads: int,
                 grid: Optional[Sequence[int]] = None,
                 t_extra_tokens: Optional[int] = None,
                 align: str = 'resize',
                 window: int = 4,
                 gl_dropout: float = 0.1,
                 sub_prob: float = 0.5,
                 lambda_adv: float = 1.0,
                 d_hidden: int = 256,
                 proj1: str = 'attention',
                 proj1_weights: Sequence[float] = (1.0, 1.0),
                 pca_kernel: int = 3,
                 proj_init: str = 'default',
                 **kwargs):
        super().__init__(**kwargs)
        if proj_init not in ('default', 'trunc_normal'):
            raise ValueError(f"CAKDLoss: proj_init must be 'default' (PyTorch's) or "
                             f"'trunc_normal' (std 0.02, zero bias), got {proj_init!r}")
        self.proj_init = proj_init
        if proj1 not in ('attention', 'scores'):
            raise ValueError(f"CAKDLoss: proj1 must be 'attention' (the paper) or 'scores' (the "
                             f'public code), got {proj1!r}')
        if proj1 == 'scores' and sub_prob > 0:
            raise ValueError(f"CAKDLoss: proj1='scores' (the public code) has no partial "
                             f'substitution; set sub_prob=0 (got {sub_prob})')
        if len(proj1_weights) != 2:
            raise ValueError('CAKDLoss: proj1_weights must be (attention, value relation), got '
                             f'{proj1_weights}')
        if pca_kernel not in (1, 3):
            raise ValueError(f'CAKDLoss: pca_kernel must be 3 (the paper) or 1 (the public '
                             f'code), got {pca_kernel}')
        if align not in ('resize', 'error'):
            raise ValueError(f"CAKDLoss: align must be 'resize' or 'error', got {align!r}")
        if t_dims % t_heads:
            raise ValueError(f'CAKDLoss: t_dims={t_dims} is not divisible by t_heads={t_heads}')
        if not 0 <= sub_prob <= 1:
            raise ValueError(f'CAKDLoss: sub_prob must be in [0, 1], got {sub_prob}')
        if grid is not None and len(grid) != 2:
            raise ValueError(f'CAKDLoss: grid must be (h, w), got {grid}')
        self.s_channels, self.t_dims, self.t_heads = int(s_channels), int(t_dims), int(t_heads)
        self.head_dims = self.t_dims // self.t_heads
        self.t_extra_tokens = t_extra_tokens
        self.align, self.window, self.gl_dropout = align, int(window), float(gl_dropout)
        self.sub_prob, self.lambda_adv = float(sub_prob), float(lambda_adv)
        self.proj1 = proj1
        self.proj1_weights = tuple(float(w) for w in proj1_weights)

        self.pca = init_projector(PCAProjector(self.s_channels, self.head_dims, pca_kernel),
                                  proj_init)
        self.discriminator = TokenDiscriminator(self.t_dims, d_hidden)
        self.grid: Optional[Tuple[int, int]] = None
        if grid is not None:
            self._build_gl(grid)
        self._last_tokens: Optional[Tuple[Tensor, Tensor]] = None
        self._told_resize = False

    def _build_gl(self, grid: Sequence[int]) -> None:
        self.grid = tuple(int(g) for g in grid)
        self.gl = init_projector(GroupWiseLinear(self.s_channels, self.t_dims, self.grid,
                                                 self.window, self.gl_dropout), self.proj_init)

    # -- what the teacher tells us --------------------------------------------------------
    def setup(self, student: nn.Module, teacher: nn.Module) -> None:
        """Read the teacher's grid and extra tokens; check heads and width against its last
        attention block, so that a wrong config fails at build time."""
        backbone = getattr(teacher, 'backbone', teacher)
        if self.t_extra_tokens is None:
            self.t_extra_tokens = int(getattr(backbone, 'num_extra_tokens', 0))
        path, attn = last_attention(teacher)
        swin_grid = swin_last_grid(backbone)
        window = getattr(attn, 'window_size', None)
        if window is not None and swin_grid is not None:
            window = tuple(int(v) for v in window) if isinstance(window, (tuple, list)) \
                else (int(window), ) * 2
            if swin_grid != window:
                raise ValueError(
                    f"CAKDLoss '{self.name}': the teacher's last attention block '{path}' is "
                    f'window attention ({window[0]}x{window[1]} windows) on a '
                    f'{swin_grid[0]}x{swin_grid[1]} grid; CAKD needs global attention over the '
                    'token grid, i.e. a single window (Swin with window 7 at 224 px)')
        if self.grid is None:
            grid = getattr(backbone, 'patch_resolution', None) if swin_grid is None else swin_grid
            if grid is None:
                raise ValueError(
                    f"CAKDLoss '{self.name}': cannot read the teacher's token grid; set "
                    'grid=(h, w), the token grid of its last attention block')
            self._build_gl(grid)
        elif swin_grid is not None and swin_grid != self.grid:
            raise ValueError(f"CAKDLoss '{self.name}': grid={self.grid} but the teacher's last "
                             f'stage has a {swin_grid[0]}x{swin_grid[1]} grid')
        if attn is not None:
            if int(attn.num_heads) != self.t_heads:
                raise ValueError(f"CAKDLoss '{self.name}': t_heads={self.t_heads} but the "
                                 f"teacher's last attention block '{path}' has {attn.num_heads}")
            if attn.qkv.out_features != 3 * self.t_dims:
                raise ValueError(f"CAKDLoss '{self.name}': t_dims={self.t_dims} but the teacher's "
                                 f"last attention block '{path}' has width "
                                 f'{attn.qkv.out_features // 3}')

    # -- checks ---------------------------------------------------------------------------
    def check_inputs(self, s_feat: Tensor, t_qkv: Tensor, t_tokens: Tensor,
                     sub_masks: Optional[Tensor] = None) -> None:
        if self.grid is None or self.t_extra_tokens is None:
            raise ValueError(f"CAKDLoss '{self.name}': grid/extra tokens unknown: build it in a "
                             'distiller (setup) or pass grid and t_extra_tokens')
        h, w = self.grid
        n_all = self.t_extra_tokens + h * w
        self.require_ndim('s_feat', s_feat, (4, ))
        self.require_ndim('t_qkv', t_qkv, (3, ))
        self.require_ndim('t_tokens', t_tokens, (3, ))
        if s_feat.shape[1] != self.s_channels:
            raise self.shape_error(f'expected {self.s_channels} student channels (B, c, h, w)',
                                   's_feat', s_feat)
        B = s_feat.shape[0]
        if t_qkv.shape[0] != B:
            raise self.shape_error(
                f'the teacher attention runs on {t_qkv.shape[0]} sequences for a batch of {B}: '
                'windowed attention (Swin with more than one window in its last stage) is not '
                'supported; CAKD needs global attention over the token grid (Swin at 224 px '
                'with window 7 has a single 7x7 window in its last stage)', 't_qkv', t_qkv,
                's_feat', s_feat)
        if t_qkv.shape[2] != 3 * self.t_dims or t_qkv.shape[1] != n_all:
            raise self.shape_error(
                f'expected (B, {self.t_extra_tokens} extra + {h}x{w} tokens, 3 * {self.t_dims})',
                't_qkv', t_qkv)
        if tuple(t_tokens.shape) != (B, n_all, self.t_dims):
            raise self.shape_error(
                f'expected (B, {self.t_extra_tokens} extra + {h}x{w} tokens, {self.t_dims})',
                't_tokens', t_tokens)
        if tuple(s_feat.shape[2:]) != self.grid:
            if self.align == 'error':
                raise self.shape_error(f'the student grid differs from the teacher grid {h}x{w} '
                                       "(align='error')", 's_feat', s_feat)
            if not self._told_resize:
                MMLogger.get_current_instance().info(
                    f"CAKDLoss '{self.name}': resizing the student map "
                    f'{tuple(s_feat.shape[2:])} to the teacher grid {self.grid} (bilinear)')
                self._told_resize = True
        if sub_masks is not None and tuple(sub_masks.shape) != (3, B, h * w, self.head_dims):
            raise self.shape_error(f'sub_masks must be (3, B, {h * w}, {self.head_dims})',
                                   'sub_masks', sub_masks)

    # -- the loss -------------------------------------------------------------------------
    def align_student(self, s_feat: Tensor) -> Tensor:
        """(B, c, hs, ws) -> (B, c, h, w) on the teacher grid."""
        if tuple(s_feat.shape[2:]) == self.grid:
            return s_feat
        return F.interpolate(s_feat, size=self.grid, mode='bilinear', align_corners=False)

    def discriminate(self, tokens: Tensor, train_d: bool) -> Tensor:
        """Token logits (B, N, 1). With ``train_d=False`` D's parameters are detached: the
        gradient reaches ``tokens`` but never D."""
        if train_d:
            return self.discriminator(tokens)
        params = {n: p.detach() for n, p in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, params, (tokens, ))

    def forward(self, s_feat: Tensor, t_qkv: Tensor, t_tokens: Tensor,
                sub_masks: Optional[Tensor] = None) -> Tensor:
        """``sub_masks`` (3, B, N, d) bool fixes which elements of Q_S, K_S, V_S are the
        teacher's (tests); by default they are drawn in training and none in eval."""
        # float32 even under AMP: V V^T, the N x N scores and the squared errors overflow fp16
        with torch.autocast(device_type=s_feat.device.type, enabled=False):
            return self._forward(s_feat, t_qkv, t_tokens, sub_masks)

    def _forward(self, s_feat: Tensor, t_qkv: Tensor, t_tokens: Tensor,
                 sub_masks: Optional[Tensor]) -> Tensor:
        s = self.align_student(s_feat.float())
        q_s, k_s, v_s = self.pca(s)
        q_t, k_t, v_t = split_qkv(t_qkv.detach().float(), self.t_heads, self.t_extra_tokens)

        if self.proj1 == 'scores':
            proj1 = self._scores_proj1(q_s, k_s, v_s, q_t, k_t, v_t)
        else:
            proj1 = self._attention_proj1(q_s, k_s, v_s, q_t, k_t, v_t, sub_masks)

        s_tokens = self.gl(s.flatten(2).transpose(1, 2))  # (B, N, D)
        t_tok = t_tokens[:, self.t_extra_tokens:].detach().float()
        proj2 = F.mse_loss(s_tokens, t_tok)

        mvg = F.logsigmoid(-self.discriminate(s_tokens, train_d=False)).mean()

        self._last_tokens = (t_tok.detach(), s_tokens.detach())
        self.log_vars = dict(proj1=proj1.detach(), proj2=proj2.detach(), mvg=mvg.detach())
        return proj1 + proj2 + self.lambda_adv * mvg

    def _attention_proj1(self, q_s: Tensor, k_s: Tensor, v_s: Tensor, q_t: Tensor, k_t: Tensor,
                         v_t: Tensor, sub_masks: Optional[Tensor]) -> Tensor:
        """The paper's L_proj1 (partial substitution in training)."""
        if sub_masks is None and self.training and self.sub_prob > 0:
            sub_masks = torch.rand((3, ) + tuple(q_s.shape), device=q_s.device) < self.sub_prob
        if sub_masks is not None:
            sub_masks = sub_masks.to(q_s.device, torch.bool)
            gq = torch.where(sub_masks[0], q_t, q_s)
            gk = torch.where(sub_masks[1], k_t, k_s)
            gv = torch.where(sub_masks[2], v_t, v_s)
        else:
            gq, gk, gv = q_s, k_s, v_s
        w_a, w_v = self.proj1_weights
        return (w_a * F.mse_loss(attention(gq, gk, gv), attention(q_t, k_t, v_t))
                + w_v * F.mse_loss(value_relation(v_s), value_relation(v_t)))

    def _scores_proj1(self, q_s: Tensor, k_s: Tensor, v_s: Tensor, q_t: Tensor, k_t: Tensor,
                      v_t: Tensor) -> Tensor:
        """The public code's L_proj1: pre-softmax maps and unscaled value relations."""
        w_a, w_v = self.proj1_weights
        scale = 1 / math.sqrt(q_s.shape[-1])
        return (w_a * F.mse_loss(q_s @ k_s.transpose(1, 2) * scale,
                                 q_t @ k_t.transpose(1, 2) * scale)
                + w_v * F.mse_loss(v_s @ v_s.transpose(1, 2), v_t @ v_t.transpose(1, 2)))

    def discriminator_loss(self, t_tokens: Optional[Tensor] = None,
                           s_tokens: Optional[Tensor] = None) -> Tensor:
        """``L_MAD`` on (B, N, D) teacher tokens and projected student tokens, both detached;
        by default those of the last :meth:`forward`."""
        if t_tokens is None or s_tokens is None:
            if self._last_tokens is None:
                raise RuntimeError(f"CAKDLoss '{self.name}': discriminator_loss() before any "
                                   'forward: no tokens to discriminate')
            t_tokens, s_tokens = self._last_tokens
        with torch.autocast(device_type=t_tokens.device.type, enabled=False):
            z_t = self.discriminate(t_tokens.detach().float(), train_d=True)
            z_s = self.discriminate(s_tokens.detach().float(), train_d=True)
            return (-F.logsigmoid(z_t) - F.logsigmoid(-z_s)).mean()
