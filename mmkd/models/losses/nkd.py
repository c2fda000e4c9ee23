import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import DistillLoss, hard_labels, non_target


@MODELS.register_module()
class NKDLoss(DistillLoss):
    """Normalized KD (Yang et al., "From Knowledge Distillation to Self-Knowledge Distillation").

    With ``p = softmax(z)`` (T=1) and ``q = softmax(z_{k != gt} / T)`` renormalised over the K-1
    non-target classes::

        L = -mean_b(p_t[gt] * log p_s[gt]) - gamma * T^2 * mean_b sum_{k != gt} q_t[k] log q_s[k]

    Soft (mixup/cutmix) labels are reduced to ``gt = argmax``. The teacher is not differentiated.

    Shapes: ``s_logits``, ``t_logits``: (B, K); ``gt``: (B,) or (B, K).
    """
    default_inputs = dict(s_logits='student.logits', t_logits='teacher.logits', gt='data.gt_score')

    def __init__(self, tau: float = 1.0, gamma: float = 1.5, **kwargs):
        super().__init__(**kwargs)
        self.tau = tau
        self.gamma = gamma

    def check_inputs(self, s_logits: Tensor, t_logits: Tensor, gt: Tensor) -> None:
        self.require_logits_and_labels(s_logits, t_logits, gt)

    def forward(self, s_logits: Tensor, t_logits: Tensor, gt: Tensor) -> Tensor:
        gt = hard_labels(gt).unsqueeze(1)
        t_logits = t_logits.detach()
        log_p_s = F.log_softmax(s_logits, dim=1).gather(1, gt)
        p_t = F.softmax(t_logits, dim=1).gather(1, gt)
        target = -(p_t * log_p_s).mean()

        T = self.tau
        gt = gt.squeeze(1)
        log_q_s = F.log_softmax(non_target(s_logits, gt) / T, dim=1)
        q_t = F.softmax(non_target(t_logits, gt) / T, dim=1)
        non_target_term = -(q_t * log_q_s).sum(dim=1).mean()
        return target + self.gamma * T * T * non_target_term
