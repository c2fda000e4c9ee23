from .teacher_metric import TeacherMetric

__all__ = ['TeacherMetric']
