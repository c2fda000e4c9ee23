"""tools/slurm_train.sh, tools/slurm_test.sh (mmpretrain's interface) and the multi-node
variables of tools/dist_train.sh / dist_test.sh, run against fake ``srun`` / ``python``
executables first on PATH that record what they were asked to run."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from conftest import ROOT

# records its arguments (NUL-separated) and environment; with FAKE_EXEC=1 it then runs the
# task command as a one-task Slurm step would (what follows srun's -p PART and --options)
FAKE_SRUN = r'''#!/usr/bin/env bash
printf '%s\0' "$@" > "$FAKE_RECORD/argv"
env -0 > "$FAKE_RECORD/env"
if [ "${FAKE_EXEC:-0}" = 1 ]; then
    shift 2
    while [[ "$1" == -* ]]; do shift; done
    SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_NODELIST=localhost exec "$@"
fi
'''
FAKE_RECORDER = r'''#!/usr/bin/env bash
printf '%s\0' "$@" > "$FAKE_RECORD/argv"
env -0 > "$FAKE_RECORD/env"
'''
TOOLS = osp.join(ROOT, 'tools')
CONFIG = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'


@pytest.fixture
def fake_bin(tmp_path):
    """A directory put first on PATH, and a function installing a fake executable there and
    running a tools/ script with it; returns (argv, env) the fake recorded."""
    bin_dir, record = tmp_path / 'bin', tmp_path / 'record'
    bin_dir.mkdir()
    record.mkdir()

    def run(script, args, exe='srun', body=FAKE_SRUN, env=None, check=True):
        path = bin_dir / exe
        path.write_text(body)
        path.chmod(0o755)
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS',
                                 'PY_ARGS', 'PYTHON', 'NNODES', 'NODE_RANK', 'PORT',
                                 'MASTER_ADDR', 'MASTER_PORT')}
        full_env.update(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                        FAKE_RECORD=str(record), **(env or {}))
        proc = subprocess.run(['bash', osp.join(TOOLS, script), *args], cwd=ROOT, env=full_env,
                              capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f'{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}'
                                 f'\n{proc.stderr[-5000:]}')
        if not (record / 'argv').exists():
            return proc, None, None
        argv = (record / 'argv').read_text().split('\0')[:-1]
        recorded_env = dict(item.split('=', 1) for item in
                            (record / 'env').read_text().split('\0') if '=' in item)
        return proc, argv, recorded_env
    return run


def split_srun(argv):
    """srun's own options (up to the interpreter) and the task command."""
    i = next(i for i, a in enumerate(argv) if i > 1 and not a.startswith('-'))
    return argv[:i], argv[i:]


@pytest.mark.slow
def test_slurm_train_defaults(fake_bin):
    _, argv, env = fake_bin('slurm_train.sh', ['gpu', 'kd_vit', CONFIG, 'work_dirs/kd_vit'])
    srun, cmd = split_srun(argv)
    assert srun == ['-p', 'gpu', '--job-name=kd_vit', '--gres=gpu:8', '--ntasks=8',
                    '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert cmd == ['python', '-u', osp.join(TOOLS, 'train.py'), CONFIG,
                   '--work-dir=work_dirs/kd_vit', '--launcher=slurm']
    assert env['PYTHONPATH'].split(os.pathsep)[0] == osp.join(TOOLS, '..')  # mmkd importable


@pytest.mark.slow
def test_slurm_train_multi_node_and_extra_args(fake_bin):
    _, argv, _ = fake_bin(
        'slurm_train.sh', ['gpu', 'kd_vit', CONFIG, 'wd', '--resume', '--cfg-options',
                           'model.teacher_ckpt=t.pth'],
        env=dict(GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='4',
                 SRUN_ARGS='--quotatype=auto --time=2:00:00', PY_ARGS='--amp'))
    srun, cmd = split_srun(argv)
    assert srun == ['-p', 'gpu', '--job-name=kd_vit', '--gres=gpu:8', '--ntasks=16',
                    '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
                    '--quotatype=auto', '--time=2:00:00']
    assert cmd[3:] == [CONFIG, '--work-dir=wd', '--launcher=slurm', '--amp', '--resume',
                       '--cfg-options', 'model.teacher_ckpt=t.pth']


@pytest.mark.slow
def test_slurm_fewer_gpus_than_a_node(fake_bin):
    _, argv, _ = fake_bin('slurm_train.sh', ['p', 'j', CONFIG, 'wd'], env=dict(GPUS='2'))
    srun, _ = split_srun(argv)
    assert '--ntasks=2' in srun and '--ntasks-per-node=2' in srun and '--gres=gpu:2' in srun


@pytest.mark.slow
def test_slurm_test(fake_bin):
    _, argv, _ = fake_bin('slurm_test.sh', ['gpu', 'eval', CONFIG, 'wd/epoch_1.pth', '--out',
                                            'm.json'],
                          env=dict(GPUS='4', PYTHON='/opt/py/bin/python'))
    srun, cmd = split_srun(argv)
    assert srun == ['-p', 'gpu', '--job-name=eval', '--gres=gpu:4', '--ntasks=4',
                    '--ntasks-per-node=4', '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert cmd == ['/opt/py/bin/python', '-u', osp.join(TOOLS, 'test.py'), CONFIG,
                   'wd/epoch_1.pth', '--launcher=slurm', '--out', 'm.json']


@pytest.mark.slow
@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_slurm_missing_arguments(fake_bin, script):
    proc, argv, _ = fake_bin(script, ['gpu', 'job', CONFIG], check=False)
    assert proc.returncode == 2 and 'usage:' in proc.stderr and argv is None


@pytest.mark.slow
def test_train_and_test_accept_launcher_slurm():
    for tool in ('train.py', 'test.py'):
        out = subprocess.run([sys.executable, osp.join(TOOLS, tool), '--help'], cwd=ROOT,
                             capture_output=True, text=True, timeout=120).stdout
        assert '--launcher {none,pytorch,slurm,mpi}' in out, tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_slurm_train_runs_on_cpu(fake_bin, tmp_path):
    """One real task through the fake srun: tools/train.py --launcher=slurm on a CPU takes rank,
    world size and master from Slurm's variables (MMEngine's slurm launcher needs a GPU)."""
    work = tmp_path / 'work'
    fake_bin('slurm_train.sh', [
        'cpu', 'slurm_cpu', 'configs/fmnist/resnet-small_1xb128_fmnist.py', str(work),
        '--cfg-options', 'train_dataloader.dataset.indices=64', 'train_dataloader.batch_size=32',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.dataset.indices=32', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1'],
        env=dict(GPUS='1', FAKE_EXEC='1', PYTHON=sys.executable, MASTER_PORT=str(free_port()),
                 OMP_NUM_THREADS='1'))
    log = open(next(work.glob('*/*.log'))).read()
    assert 'Distributed training: True' in log and 'GPU number: 1' in log
    assert osp.isfile(work / 'epoch_1.pth')


def test_slurm_to_torch_env(monkeypatch, tmp_path):
    from mmkd.utils.launch import slurm_master_addr, slurm_to_torch_env
    for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        # setenv first, so that monkeypatch restores the variables slurm_to_torch_env sets
        # (a bare delenv of an absent one records nothing: MASTER_ADDR=gpu3 leaked into later
        # torchrun tests, which then waited for that host)
        monkeypatch.setenv(k, '')
        monkeypatch.delenv(k)
    scontrol = tmp_path / 'scontrol'  # the first host of the expanded list is the master
    scontrol.write_text('#!/usr/bin/env bash\n[ "$*" = "show hostnames gpu[3-4]" ] && '
                        'printf "gpu3\\ngpu4\\n"\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv('PATH', f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.setenv('SLURM_PROCID', '13')
    monkeypatch.setenv('SLURM_NTASKS', '16')
    monkeypatch.setenv('SLURM_LOCALID', '5')
    monkeypatch.setenv('SLURM_NODELIST', 'gpu[3-4]')
    slurm_to_torch_env()
    assert {k: os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                                       'MASTER_PORT')} == dict(
        RANK='13', WORLD_SIZE='16', LOCAL_RANK='5', MASTER_ADDR='gpu3', MASTER_PORT='29500')

    scontrol.unlink()  # no scontrol: a single host is its own master; a list is an error
    assert slurm_master_addr('node7') == 'node7'
    with pytest.raises(RuntimeError, match=r"SLURM_NODELIST 'gpu\[3-4\]'.*MASTER_ADDR"):
        slurm_master_addr('gpu[3-4]')
    monkeypatch.delenv('SLURM_NTASKS')
    with pytest.raises(RuntimeError, match='SLURM_NTASKS'):
        slurm_to_torch_env()


@pytest.mark.slow
@pytest.mark.parametrize('script,args,tool', [
    ('dist_train.sh', [CONFIG, '4', '--amp'], 'train.py'),
    ('dist_test.sh', [CONFIG, 'c.pth', '4', '--out', 'm.json'], 'test.py')])
def test_dist_scripts_multi_node_variables(fake_bin, script, args, tool):
    _, argv, env = fake_bin(script, args, exe='python', body=FAKE_RECORDER,
                            env=dict(NNODES='2', NODE_RANK='1', MASTER_ADDR='10.1.1.1',
                                     PORT='29612'))
    extra = args[2:] if tool == 'train.py' else args[3:]
    positional = args[:1] if tool == 'train.py' else args[:2]
    assert argv == ['-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
                    '--master_addr=10.1.1.1', '--nproc_per_node=4', '--master_port=29612',
                    osp.join(TOOLS, tool), *positional, '--launcher', 'pytorch', *extra]
    assert env['PYTHONPATH'].split(os.pathsep)[0] == osp.join(TOOLS, '..')


@pytest.mark.slow
def test_dist_train_single_node_defaults(fake_bin):
    _, argv, _ = fake_bin('dist_train.sh', [CONFIG, '2'], exe='python', body=FAKE_RECORDER)
    assert argv[2:7] == ['--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
                         '--nproc_per_node=2', '--master_port=29500']
