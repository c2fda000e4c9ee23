import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import DistillLoss


@MODELS.register_module()
class DeiTLoss(DistillLoss):
    """DeiT's distillation-token loss (Touvron et al., 2021).

    - ``hard``: ``CE(s_logits, argmax(t_logits))``
    - ``soft``: ``KL(log_softmax(s/T), log_softmax(t/T), sum, log_target) * T^2 / (B*K)``

    ``s_logits`` are the *distillation-token* logits of the student, tapped at
    ``head.layers.head_dist`` of a :class:`~mmkd.models.DistillTokenClsHead`. The paper's
    ``(1-alpha)*CE + alpha*this`` is ``student_loss_weight=1-alpha`` and ``loss_weight=alpha``.

    Shapes: ``s_logits``, ``t_logits``: (B, K).
    """
    default_inputs = dict(s_logits='student.dist_logits', t_logits='teacher.logits')

    def __init__(self, mode: str = 'hard', tau: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if mode not in ('hard', 'soft'):
            raise ValueError(f"DeiTLoss: mode must be 'hard' or 'soft', got {mode!r}")
        self.mode = mode
        self.tau = tau

    def check_inputs(self, s_logits: Tensor, t_logits: Tensor) -> None:
        self.require_ndim('s_logits', s_logits, (2, ))
        self.require_same_shape('s_logits', s_logits, 't_logits', t_logits)

    def forward(self, s_logits: Tensor, t_logits: Tensor) -> Tensor:
        if self.mode == 'hard':
            return F.cross_entropy(s_logits, t_logits.argmax(dim=1))
        T = self.tau
        kl = F.kl_div(F.log_softmax(s_logits / T, dim=1), F.log_softmax(t_logits / T, dim=1),
                      reduction='sum', log_target=True)
        return kl * T * T / s_logits.numel()
