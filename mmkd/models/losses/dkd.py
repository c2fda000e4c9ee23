import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import DistillLoss, hard_labels


@MODELS.register_module()
class DKDLoss(DistillLoss):
    """Decoupled KD (Zhao et al., CVPR 2022): ``alpha * TCKD + beta * NCKD``.

    - TCKD: KL between the binary (target, all others) distributions at temperature T, * T^2 / B.
    - NCKD: KL between the non-target distributions (target logit suppressed by -1000), * T^2 / B.

    DKD's warm-up ``min(epoch / warmup, 1)`` (epoch counted from 1) is a
    :class:`~mmkd.engine.DistillScheduleHook` on ``weight_scale``; see ``configs/dkd``.

    Shapes: ``s_logits``, ``t_logits``: (B, K); ``gt``: (B,) or (B, K).
    """
    default_inputs = dict(s_logits='student.logits', t_logits='teacher.logits', gt='data.gt_score')

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, tau: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha
        self.beta = beta
        self.tau = tau

    def check_inputs(self, s_logits: Tensor, t_logits: Tensor, gt: Tensor) -> None:
        self.require_logits_and_labels(s_logits, t_logits, gt)

    def forward(self, s_logits: Tensor, t_logits: Tensor, gt: Tensor) -> Tensor:
        T = self.tau
        batch = s_logits.size(0)
        gt_mask = torch.zeros_like(s_logits).scatter_(1, hard_labels(gt).unsqueeze(1), 1.0)
        p_s = F.softmax(s_logits / T, dim=1)
        p_t = F.softmax(t_logits / T, dim=1)
        # binary distributions: [p(target), p(all non-targets)]
        b_s = torch.stack([(p_s * gt_mask).sum(1), (p_s * (1 - gt_mask)).sum(1)], dim=1)
        b_t = torch.stack([(p_t * gt_mask).sum(1), (p_t * (1 - gt_mask)).sum(1)], dim=1)
        tckd = F.kl_div(torch.log(b_s), b_t, reduction='sum') * T * T / batch
        log_q_s = F.log_softmax(s_logits / T - 1000.0 * gt_mask, dim=1)
        q_t = F.softmax(t_logits / T - 1000.0 * gt_mask, dim=1)
        nckd = F.kl_div(log_q_s, q_t, reduction='sum') * T * T / batch
        return self.alpha * tckd + self.beta * nckd
