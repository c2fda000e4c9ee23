from .checkpoint import (DamagedCheckpointError, check_checkpoint, checkpoint_damage,
                         find_resume_checkpoint, load_checkpoint_file, reporting_damage)
from .launch import load_run_config, setup_cpu_distributed, teardown_distributed

__all__ = ['DamagedCheckpointError', 'check_checkpoint', 'checkpoint_damage',
           'find_resume_checkpoint', 'load_checkpoint_file', 'load_run_config',
           'reporting_damage', 'setup_cpu_distributed', 'teardown_distributed']
