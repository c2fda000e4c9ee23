import copy
from typing import Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmkd.registry import METRICS


@METRICS.register_module()
class TeacherMetric(BaseMetric):
    """Evaluates the teacher with any classification metric, reported under ``teacher/``.

    Needs ``model.eval_teacher=True`` (the distiller then stores ``teacher_pred_score`` and
    ``teacher_pred_label`` next to the student's predictions). Example::

        val_evaluator = [dict(type='Accuracy', topk=(1, )),
                         dict(type='TeacherMetric', metric=dict(type='Accuracy', topk=(1, )))]
    """

    def __init__(self, metric: dict, prefix: Optional[str] = 'teacher', **kwargs):
        super().__init__(prefix=prefix, **kwargs)
        self.metric = METRICS.build(metric)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        swapped = []
        for sample in data_samples:
            if 'teacher_pred_score' not in sample:
                raise KeyError('TeacherMetric: no teacher predictions; set eval_teacher=True in '
                               'the distiller')
            sample = copy.copy(sample)
            sample['pred_score'] = sample['teacher_pred_score']
            sample['pred_label'] = sample['teacher_pred_label']
            swapped.append(sample)
        self.metric.process(data_batch, swapped)

    def compute_metrics(self, results: list) -> dict:  # evaluate() below delegates instead
        raise NotImplementedError

    def evaluate(self, size: int) -> dict:
        return {f'{self.prefix}/{k}': v for k, v in self.metric.evaluate(size).items()}
