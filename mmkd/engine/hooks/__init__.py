from .distill_schedule_hook import DistillScheduleHook

__all__ = ['DistillScheduleHook']
