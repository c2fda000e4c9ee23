import copy
from typing import Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmkd.registry import METRICS


@METRICS.register_module()
class PredFieldMetric(BaseMetric):
    """Evaluates a second prediction stored in the data samples, reported under its own prefix.

    The model stores ``<field>_pred_score`` / ``<field>_pred_label`` next to the usual
    ``pred_score`` / ``pred_label``; this metric evaluates them with any classification metric,
    as if they were the prediction. E.g. CSKD's patch-token ensemble
    (:class:`~mmkd.models.heads.CSKDClsHead`), reported next to the plain DeiT prediction::

        val_evaluator = [dict(type='Accuracy', topk=(1, )),
                         dict(type='PredFieldMetric', field='ensemble',
                              metric=dict(type='Accuracy', topk=(1, )))]

    gives ``accuracy/top1`` and ``ensemble/accuracy/top1``.

    Args:
        field (str): the prediction's name, i.e. the prefix of ``<field>_pred_score``.
        metric (dict): the metric to run on that prediction.
        prefix (str, optional): reporting prefix; defaults to ``field``.
        hint (str, optional): what to check when the model stored no such prediction.
    """

    #: what to check when the field is missing
    hint = "for CSKD's ensemble: a CSKDClsHead student with backbone out_type='raw'"

    def __init__(self, field: str, metric: dict, prefix: Optional[str] = None,
                 hint: Optional[str] = None, **kwargs):
        super().__init__(prefix=prefix or field, **kwargs)
        if hint is not None:
            self.hint = hint
        self.field = field
        self.metric = METRICS.build(metric)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        swapped = []
        for sample in data_samples:
            score_key, label_key = f'{self.field}_pred_score', f'{self.field}_pred_label'
            if score_key not in sample:
                raise KeyError(f"{type(self).__name__}: the model stored no '{score_key}' "
                               f'({self.hint})')
            sample = copy.copy(sample)
            sample['pred_score'] = sample[score_key]
            sample['pred_label'] = sample[label_key]
            swapped.append(sample)
        self.metric.process(data_batch, swapped)

    def compute_metrics(self, results: list) -> dict:  # evaluate() below delegates instead
        raise NotImplementedError

    def evaluate(self, size: int) -> dict:
        return {f'{self.prefix}/{k}': v for k, v in self.metric.evaluate(size).items()}
