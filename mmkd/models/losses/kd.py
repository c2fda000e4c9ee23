import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .base import DistillLoss


@MODELS.register_module()
class KDLoss(DistillLoss):
    """Hinton et al. knowledge distillation.

    ``KL(softmax(t_logits / T) || softmax(s_logits / T)) * T^2``, averaged over the batch.

    Args:
        tau (float): temperature T.

    Shapes: ``s_logits``, ``t_logits``: (B, K).
    """
    default_inputs = dict(s_logits='student.logits', t_logits='teacher.logits')

    def __init__(self, tau: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.tau = tau

    def check_inputs(self, s_logits: Tensor, t_logits: Tensor) -> None:
        self.require_ndim('s_logits', s_logits, (2, ))
        self.require_same_shape('s_logits', s_logits, 't_logits', t_logits)

    def forward(self, s_logits: Tensor, t_logits: Tensor) -> Tensor:
        T = self.tau
        return F.kl_div(F.log_softmax(s_logits / T, dim=1), F.log_softmax(t_logits / T, dim=1),
                        reduction='batchmean', log_target=True) * T * T
