import os
import os.path as osp
import shutil
import subprocess

import torch
import torch.distributed as dist

from .renamed_configs import renamed_config_error


def slurm_master_addr(node_list: str) -> str:
    """The first host of a Slurm node list (``'node[3-5,7]'`` -> ``'node3'``), which hosts
    task 0 and so the rendezvous."""
    if shutil.which('scontrol'):
        out = subprocess.run(['scontrol', 'show', 'hostnames', node_list], capture_output=True,
                             text=True, check=False).stdout.split()
        if out:
            return out[0]
    # no scontrol (or it failed): a plain host name is its own first host
    if not any(c in node_list for c in ',[]'):
        return node_list
    raise RuntimeError(f"cannot find the first host of SLURM_NODELIST '{node_list}' without "
                       '`scontrol show hostnames`: set MASTER_ADDR')


def slurm_to_torch_env() -> None:
    """torch.distributed's variables from Slurm's, as MMEngine's slurm launcher sets them:
    RANK=SLURM_PROCID, WORLD_SIZE=SLURM_NTASKS, LOCAL_RANK=SLURM_LOCALID, MASTER_ADDR = the
    first node (unless set), MASTER_PORT=29500 (unless set). Done here for CPU runs, because
    that launcher then calls ``torch.cuda.set_device``, which fails without GPUs."""
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher slurm outside a Slurm job step: {missing} not set '
                           '(start it with srun, e.g. through tools/slurm_train.sh)')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = slurm_master_addr(os.environ['SLURM_NODELIST'])


def setup_cpu_distributed(cfg) -> bool:
    """Make ``--launcher pytorch`` (and ``slurm``) work on a machine without GPUs.

    MMEngine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model in DDP with
    ``device_ids=[local_rank]``; both fail on CPU. Here we open the process group with gloo
    ourselves (MMEngine then skips its own initialisation) and ask DDP for ``device_ids=None``,
    which is what CPU modules need; under ``slurm`` the ranks come from Slurm's variables
    (:func:`slurm_to_torch_env`). ``find_unused_parameters`` stays False unless the config
    sets it: every distiller's step gives each parameter DDP syncs a gradient
    (``tests/test_configs.py``; CrossArchDDP keeps one reducer per update for that). Returns
    whether it did so.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
        if cfg.launcher == 'slurm':
            slurm_to_torch_env()
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def teardown_distributed() -> None:
    """Destroy the process group before the interpreter exits: a gloo group left to the
    interpreter's teardown can abort a rank ('terminate called without an active exception')
    after training has finished, failing the whole torchrun job."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def load_run_config(args):
    """The config of ``args.config`` with what tools/train.py and tools/test.py both apply:
    ``--launcher``, ``--cfg-options`` and ``--work-dir`` (default ``./work_dirs/<config name>``)."""
    from mmengine.config import Config
    moved = renamed_config_error(args.config)
    if moved:
        raise FileNotFoundError(moved)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
