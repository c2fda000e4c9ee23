from .checkpoint_hook import AtomicCheckpointHook, use_atomic_checkpoints
from .distill_schedule_hook import DistillScheduleHook
from .reproducible_resume_hook import ReproducibleResumeHook, make_resume_reproducible
from .teacher_check_hook import TeacherCheckError, TeacherCheckHook

__all__ = ['AtomicCheckpointHook', 'DistillScheduleHook', 'ReproducibleResumeHook',
           'TeacherCheckError', 'TeacherCheckHook', 'make_resume_reproducible',
           'use_atomic_checkpoints']
