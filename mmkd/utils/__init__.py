from .launch import load_run_config, setup_cpu_distributed, teardown_distributed

__all__ = ['load_run_config', 'setup_cpu_distributed', 'teardown_distributed']
