"""Results tables on real data: many real training runs, mean ± std over seeds, significance."""
from .jobs import ROOT, Job, run_jobs
from .report import Row, summarize
from .table import Budget, Teacher, add_arguments, run_table

__all__ = ['ROOT', 'Job', 'run_jobs', 'Row', 'summarize', 'Budget', 'Teacher', 'add_arguments',
           'run_table']
