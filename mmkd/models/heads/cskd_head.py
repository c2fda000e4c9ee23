"""CSKD's student head: DeiT's class/distillation heads, plus the distillation head applied to
every patch token for the optional inference ensemble (CSKD appendix A.2)."""
from typing import List, Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .distill_token_head import DistillTokenClsHead


def dist_head_logits(head: nn.Module, tokens: Tensor) -> Tensor:
    """The student's distillation head applied to arbitrary tokens: (..., D) -> (..., K).

    Used for the patch tokens, both by :class:`CSKDClsHead` (ensemble) and by
    :class:`~mmkd.models.losses.CSKDLoss` (CSKD applies *the same* head as the distillation token
    to every patch token). Calling the layers fires the distiller's ``dist_logits`` tap on
    ``head.layers.head_dist`` only inside its recording of the student's forward pass, and these
    calls come after it (in the loss, at inference), so that tap keeps the distillation-token
    logits.

    Args:
        head: a DeiT-style head with ``layers.head_dist`` (``nn.Linear``) and, when it has a hidden
            layer, ``layers.pre_logits`` (``nn.Linear``) and ``layers.act``.
        tokens: (..., D).
    """
    layers = head.layers
    x = tokens
    if hasattr(layers, 'pre_logits'):  # DeiTClsHead(hidden_dim=...) applies pre_logits + act
        x = layers.act(layers.pre_logits(x))
    return layers.head_dist(x)


@MODELS.register_module()
class CSKDClsHead(DistillTokenClsHead):
    """Distillation-token head for CSKD students, with the optional patch-token ensemble.

    Training is identical to :class:`DistillTokenClsHead`: ``forward`` returns the class-token
    logits and calls ``layers.head_dist`` once, on the distillation token (the ``dist_logits``
    tap). CSKD's dense loss taps the patch tokens itself; the head does not need them to train.

    At inference the head predicts, as in DeiT, ``(cls + dist) / 2``, or, with ``ensemble=True``,
    ``(cls + dist + patch) / 3`` where ``patch`` is the distillation head's logits averaged over
    all patch tokens (CSKD appendix A.2; +0.1-0.2 top-1 in the paper). The ensemble needs the
    patch tokens: the backbone must give all tokens
    (``DistilledVisionTransformer(out_type='raw')``).

    When the patch tokens are available, :meth:`predict` stores *both* predictions, whatever
    ``ensemble`` says: ``deit_pred_score``/``deit_pred_label`` and ``ensemble_pred_score``/
    ``ensemble_pred_label`` (``pred_score``/``pred_label`` are the ones ``ensemble`` selects),
    so that one validation reports both, e.g.::

        val_evaluator = [
            dict(type='Accuracy', topk=(1, 5)),                      # accuracy/top1
            dict(type='PredFieldMetric', field='ensemble',           # ensemble/accuracy/top1
                 metric=dict(type='Accuracy', topk=(1, 5)))]

    Shapes: ``feats[-1]`` is either raw tokens (B, 2 + N, D) in the order (cls, dist, patches)
    (``out_type='raw'``) or the pair (cls_token, dist_token), each (B, D)
    (``out_type='cls_token'``); logits are (B, K).

    Args:
        ensemble (bool): predict with the three-way ensemble at inference. Defaults to False.
        **kwargs: see :class:`~mmpretrain.models.heads.DeiTClsHead`.
    """
    num_extra_tokens = 2  # DistilledVisionTransformer's raw layout: cls, dist, patches

    def __init__(self, *args, ensemble: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.ensemble = ensemble

    def split_tokens(self, feats) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """``(cls_token (B, D), dist_token (B, D), patch_tokens (B, N, D) or None)``."""
        feat = feats[-1]
        if isinstance(feat, Tensor):
            if feat.dim() != 3 or feat.size(1) <= self.num_extra_tokens:
                raise ValueError(f'{type(self).__name__}: expected raw tokens (B, 2 + N, D) from '
                                 f"a DistilledVisionTransformer with out_type='raw', got "
                                 f'{tuple(feat.shape)}')
            return feat[:, 0], feat[:, 1], feat[:, self.num_extra_tokens:]
        cls_token, dist_token = feat[-2:]  # (cls, dist) or mmpretrain's old (patch, cls, dist)
        return cls_token, dist_token, None

    def pre_logits(self, feats) -> Tuple[Tensor, Tensor]:
        """The (cls, dist) tokens after the optional hidden layer, as ``DeiTClsHead`` gives."""
        cls_token, dist_token, _ = self.split_tokens(feats)
        return super().pre_logits(((cls_token, dist_token), ))

    def _scores(self, feats, with_patches: bool):
        cls_token, dist_token, patches = self.split_tokens(feats)
        cls_token, dist_token = super().pre_logits(((cls_token, dist_token), ))
        cls_score = self.layers.head(cls_token)
        dist_score = self.layers.head_dist(dist_token)  # the one module call: dist_logits tap
        patch_score = None
        if with_patches and patches is not None:
            # (B, N, D) -> (B, N, K) -> (B, K)
            patch_score = dist_head_logits(self, patches).mean(dim=1)
        return cls_score, dist_score, patch_score

    def _require_patches(self, patch_score) -> None:
        if patch_score is None:
            raise ValueError(f'{type(self).__name__}(ensemble=True) needs the patch tokens: '
                             "set the student backbone's out_type='raw'")

    def forward(self, feats: Tuple[List[Tensor]]) -> Tensor:
        cls_score, dist_score, patch_score = self._scores(
            feats, with_patches=self.ensemble and not self.training)
        if self.training:
            return cls_score
        if self.ensemble:
            self._require_patches(patch_score)
            return (cls_score + dist_score + patch_score) / 3
        return (cls_score + dist_score) / 2

    def predict(self, feats: Tuple[List[Tensor]], data_samples: Optional[List] = None) -> List:
        cls_score, dist_score, patch_score = self._scores(feats, with_patches=True)
        deit_score = (cls_score + dist_score) / 2
        if self.ensemble:
            self._require_patches(patch_score)
        ens_score = None if patch_score is None else (cls_score + dist_score + patch_score) / 3
        samples = self._get_predictions(ens_score if self.ensemble else deit_score, data_samples)
        if ens_score is not None:
            for field, score in (('deit', deit_score), ('ensemble', ens_score)):
                for sample, prob in zip(samples, F.softmax(score, dim=1)):
                    sample.set_field(prob, f'{field}_pred_score')
                    sample.set_field(prob.argmax(dim=0, keepdim=True).detach(),
                                     f'{field}_pred_label')
        return samples
