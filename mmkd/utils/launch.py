import os
import os.path as osp

import torch
import torch.distributed as dist


def setup_cpu_distributed(cfg) -> bool:
    """Make ``--launcher pytorch`` work on a machine without GPUs.

    MMEngine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model in DDP with
    ``device_ids=[local_rank]``; both fail on CPU. Here we open the process group with gloo
    ourselves (MMEngine then skips its own initialisation) and ask DDP for ``device_ids=None``,
    which is what CPU modules need. ``find_unused_parameters`` stays False unless the config
    sets it: every distiller's step gives each parameter DDP syncs a gradient
    (``tests/test_ddp.py``; CrossArchDDP keeps one reducer per update for that). Returns whether
    it did so.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
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
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
