from typing import Optional

from mmkd.registry import METRICS
from .pred_field_metric import PredFieldMetric


@METRICS.register_module()
class TeacherMetric(PredFieldMetric):
    """Evaluates the teacher with any classification metric, reported under ``teacher/``.

    Needs ``model.eval_teacher=True`` (the distiller then stores ``teacher_pred_score`` and
    ``teacher_pred_label`` next to the student's predictions). Example::

        val_evaluator = [dict(type='Accuracy', topk=(1, )),
                         dict(type='TeacherMetric', metric=dict(type='Accuracy', topk=(1, )))]
    """
    hint = 'set eval_teacher=True in the distiller'

    def __init__(self, metric: dict, prefix: Optional[str] = 'teacher', **kwargs):
        super().__init__(field='teacher', metric=metric, prefix=prefix, **kwargs)
