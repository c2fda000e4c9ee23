from .checkpoint_hook import AtomicCheckpointHook, use_atomic_checkpoints
from .distill_schedule_hook import DistillScheduleHook
from .teacher_check_hook import TeacherCheckError, TeacherCheckHook

__all__ = ['AtomicCheckpointHook', 'DistillScheduleHook', 'TeacherCheckError', 'TeacherCheckHook',
           'use_atomic_checkpoints']
