from .pred_field_metric import PredFieldMetric
from .teacher_metric import TeacherMetric

__all__ = ['PredFieldMetric', 'TeacherMetric']
