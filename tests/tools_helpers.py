import glob
import json
import os
import os.path as osp
import subprocess
import sys

from conftest import ROOT

PY = sys.executable
# Few dozen iterations on real Fashion-MNIST: 1536 training images, batch 64, 1000 test images.
SMALL_RUN = ['train_dataloader.dataset.indices=1536', 'train_dataloader.batch_size=64',
             'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
             'val_dataloader.dataset.indices=1000', 'val_dataloader.num_workers=0',
             'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
             'test_dataloader.persistent_workers=False', 'default_hooks.logger.interval=8']


def run_tool(args, timeout=600, env=None):
    """Run a tools/ script as a user would; fail with its output on error."""
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})})
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(args)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


def train(config, work_dir, *options, extra=()):
    return run_tool([PY, 'tools/train.py', config, '--work-dir', str(work_dir), *extra,
                     '--cfg-options', *SMALL_RUN, *options])


def scalars(work_dir):
    """Every record of MMEngine's scalars.json of the (last) run in work_dir."""
    files = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]
