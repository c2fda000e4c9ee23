"""Issue 21, items 2 and 4: checkpoints that a hard kill cannot leave half-written, a resume that
passes over damaged files (saying so), and damaged or mistaken checkpoint inputs (teacher,
resume, export) reported as such."""
import os
import os.path as osp
import runpy
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

import mmkd  # noqa: F401
from mmkd.registry import MODELS
from mmkd.utils.checkpoint import (AtomicLocalBackend, DamagedCheckpointError, TEMP_NAME,
                                   checkpoint_damage, find_resume_checkpoint, temp_path)
from conftest import FMNIST, ROOT, runner_from_cfg
from tools_helpers import PY

pytestmark = pytest.mark.filterwarnings('ignore:teacher_ckpt=None', 'ignore:pkg_resources')
needs_data = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
KD = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'
CNN_CFG = 'configs/fmnist/resnet-small_1xb128_fmnist.py'


class Log:
    """A logger stand-in that keeps the warnings."""

    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)

    info = warning


def save(path, step=0, n=2000):
    torch.save({'meta': {'iter': step}, 'state_dict': {'w': torch.randn(n)}}, str(path))
    return str(path)


def truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])
    return str(path)


def corrupt(path):
    data = bytearray(open(path, 'rb').read())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data: torch.load alone would not notice
    with open(path, 'wb') as f:
        f.write(bytes(data))
    return str(path)


def point(work_dir, path):
    with open(osp.join(str(work_dir), 'last_checkpoint'), 'w') as f:
        f.write(str(path))


# -- atomic writes ------------------------------------------------------------------------------
def test_atomic_put_replaces_whole_file_or_nothing(tmp_path):
    target = str(tmp_path / 'iter_2.pth')
    backend = AtomicLocalBackend()
    backend.put(b'old contents', target)
    assert open(target, 'rb').read() == b'old contents'

    class Crashing(AtomicLocalBackend):
        def _write(self, f, data, path):
            f.write(data[:3])
            raise KeyboardInterrupt  # a kill-like interruption half-way through

    with pytest.raises(KeyboardInterrupt):
        Crashing().put(b'new contents', target)
    assert open(target, 'rb').read() == b'old contents'  # untouched
    assert os.listdir(tmp_path) == ['iter_2.pth']  # and the temporary file is gone
    backend.put(b'new contents', target)
    assert open(target, 'rb').read() == b'new contents'
    assert TEMP_NAME.match(osp.basename(temp_path(target)))


# -- damage diagnosis -----------------------------------------------------------------------------
def test_damage_is_diagnosed(tmp_path):
    good = save(tmp_path / 'good.pth')
    assert checkpoint_damage(good) is None
    assert 'cut short' in checkpoint_damage(truncate(save(tmp_path / 't.pth')))
    assert 'CRC-32' in checkpoint_damage(corrupt(save(tmp_path / 'c.pth')))
    open(tmp_path / 'e.pth', 'wb').close()
    assert 'empty' in checkpoint_damage(str(tmp_path / 'e.pth'))


# -- choosing the checkpoint to resume from -------------------------------------------------------
def test_resume_takes_the_named_checkpoint_when_intact(tmp_path):
    save(tmp_path / 'iter_2.pth', 2)
    named = save(tmp_path / 'iter_4.pth', 4)
    point(tmp_path, named)
    log = Log()
    assert find_resume_checkpoint(str(tmp_path), log) == named
    assert log.warnings == []


def test_resume_passes_over_a_damaged_checkpoint_with_a_warning(tmp_path):
    previous = save(tmp_path / 'iter_2.pth', 2)
    named = truncate(save(tmp_path / 'iter_4.pth', 4))
    # a killed save's temporary file is never a candidate
    open(tmp_path / '.iter_6.pth.12345.tmp', 'wb').write(b'PK\x03\x04partial')
    point(tmp_path, named)
    log = Log()
    assert find_resume_checkpoint(str(tmp_path), log) == previous
    assert len(log.warnings) == 1
    msg = log.warnings[0]
    assert named in msg and previous in msg and 'cut short' in msg and 'bytes' in msg


def test_resume_passes_over_a_missing_or_corrupted_named_file(tmp_path):
    first = save(tmp_path / 'iter_2.pth', 2)
    corrupt(save(tmp_path / 'iter_4.pth', 4))
    point(tmp_path, tmp_path / 'iter_6.pth')  # named, but never written
    log = Log()
    assert find_resume_checkpoint(str(tmp_path), log) == first
    assert 'iter_6.pth' in log.warnings[0] and 'does not exist' in log.warnings[0]
    assert 'iter_4.pth' in log.warnings[0] and 'CRC-32' in log.warnings[0]


def test_resume_with_an_empty_last_checkpoint_scans_the_work_dir(tmp_path):
    save(tmp_path / 'iter_2.pth', 2)
    time.sleep(0.01)
    latest = save(tmp_path / 'iter_4.pth', 4)
    point(tmp_path, '')  # a kill between MMEngine's truncating it and writing it
    log = Log()
    assert find_resume_checkpoint(str(tmp_path), log) == osp.abspath(latest)
    assert 'empty' in log.warnings[0]


def test_resume_prefers_a_later_complete_checkpoint_but_not_a_stale_one(tmp_path):
    stale = save(tmp_path / 'iter_8.pth', 8)  # of an earlier, longer run in the same dir
    os.utime(stale, (1, 1))
    named = save(tmp_path / 'iter_4.pth', 4)
    time.sleep(0.01)
    later = save(tmp_path / 'iter_6.pth', 6)  # renamed into place; last_checkpoint not updated
    point(tmp_path, named)
    log = Log()
    assert find_resume_checkpoint(str(tmp_path), log) == osp.abspath(later)
    assert 'iter_4.pth' in log.warnings[0]


def test_resume_without_any_complete_checkpoint_is_an_error(tmp_path):
    named = truncate(save(tmp_path / 'iter_2.pth', 2))
    point(tmp_path, named)
    with pytest.raises(DamagedCheckpointError, match=r"resume checkpoint '.*iter_2\.pth' is "
                                                     r'damaged .*no other complete checkpoint'):
        find_resume_checkpoint(str(tmp_path), Log())
    os.remove(osp.join(tmp_path, 'last_checkpoint'))
    assert find_resume_checkpoint(str(tmp_path), Log()) is None  # nothing to resume: fresh


# -- the hook in a real run -------------------------------------------------------------------
def _iter_runner(work_dir, max_iters, **kwargs):
    cfg = Config.fromfile(CNN_CFG)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.update(batch_size=16, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.indices = 64
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.pop('teacher_check', None)
    cfg.randomness = dict(seed=0)
    cfg.merge_from_dict(kwargs)
    return runner_from_cfg(cfg)


def _log_text(work_dir):
    return ''.join(open(osp.join(root, f)).read() for root, _, files in os.walk(str(work_dir))
                   for f in files if f.endswith('.log'))


@pytest.mark.slow
@needs_data
def test_runner_resume_falls_back_from_a_damaged_last_checkpoint(tmp_path):
    _iter_runner(tmp_path, 4).train()
    assert open(tmp_path / 'last_checkpoint').read().endswith('iter_4.pth')
    damaged = truncate(str(tmp_path / 'iter_4.pth'))
    time.sleep(1.1)  # another timestamp, so another log directory
    runner = _iter_runner(tmp_path, 6, resume=True)
    runner.train()
    assert runner.iter == 6
    assert torch.load(tmp_path / 'iter_6.pth')['meta']['iter'] == 6
    log = _log_text(tmp_path)
    assert f"resuming from '{tmp_path}/iter_2.pth' instead of '{damaged}'" in log
    assert 'cut short' in log


@pytest.mark.slow
@needs_data
def test_runner_refuses_a_damaged_explicit_resume_checkpoint(tmp_path):
    _iter_runner(tmp_path, 2).train()
    damaged = corrupt(str(tmp_path / 'iter_2.pth'))
    time.sleep(1.1)
    runner = _iter_runner(tmp_path, 4, resume=True, load_from=damaged)
    with pytest.raises(DamagedCheckpointError, match=r"resume checkpoint '.*iter_2\.pth' is "
                                                     r'damaged \([\d,]+ bytes\).*CRC-32'):
        runner.train()


@pytest.mark.slow
@needs_data
def test_killed_while_saving_then_resumed(tmp_path):
    """tools/train.py SIGKILLed while it writes iter_6.pth (the test backend stops half-way
    through it), then ``--resume``: it resumes from iter_4.pth and ends at iteration 8."""
    cfg = tmp_path / 'slow_save.py'
    cfg.write_text(
        f"_base_ = ['{ROOT}/{CNN_CFG}']\n"
        "custom_imports = dict(imports=['mmkd', 'slow_checkpoint_backend'],\n"
        "                      allow_failed_imports=False)\n"
        "train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8)\n"
        "train_dataloader = dict(batch_size=16, num_workers=0, persistent_workers=False,\n"
        "                        dataset=dict(indices=128))\n"
        "default_hooks = dict(\n"
        "    logger=dict(interval=1),\n"
        "    checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=3,\n"
        "                    backend_args=dict(backend='mmkd_test_slow_atomic')))\n"
        "randomness = dict(seed=0)\n")
    work = tmp_path / 'work'
    cmd = [PY, 'tools/train.py', str(cfg), '--work-dir', str(work), '--no-validate']
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'MMKD_TEST_SLOW_SAVE': 'iter_6.pth',
           'PYTHONPATH': os.pathsep.join([osp.join(ROOT, 'tests'),
                                          os.environ.get('PYTHONPATH', '')])}
    out = open(tmp_path / 'first.out', 'w')
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline, partial = time.time() + 500, None
    try:
        while time.time() < deadline and proc.poll() is None and partial is None:
            partial = next((n for n in (os.listdir(work) if work.is_dir() else [])
                            if TEMP_NAME.match(n) and 'iter_6.pth' in n), None)
            time.sleep(0.05)
        assert partial is not None, (f'no temporary iter_6.pth appeared (rc {proc.poll()}):\n'
                                     + open(tmp_path / 'first.out').read()[-3000:])
        time.sleep(0.3)  # the first half is written and fsynced before the backend sleeps
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (work / 'iter_6.pth').exists()  # the half-written file never got that name
    assert (work / partial).stat().st_size > 0
    assert open(work / 'last_checkpoint').read().endswith('iter_4.pth')

    env.pop('MMKD_TEST_SLOW_SAVE')
    resumed = subprocess.run(cmd + ['--resume'], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, text[-4000:]
    assert 'resumed epoch: 0, iter: 4' in text.lower()
    assert 'the partial' in text and partial in text  # the leftover was removed, saying so
    assert not [n for n in os.listdir(work) if TEMP_NAME.match(n)]
    final = torch.load(work / 'iter_8.pth')
    assert final['meta']['iter'] == 8
    assert open(work / 'last_checkpoint').read().endswith('iter_8.pth')
    assert checkpoint_damage(str(work / 'iter_6.pth')) is None  # written again, complete


# -- broken teacher checkpoints ---------------------------------------------------------------
def _kd_cfg(teacher_ckpt):
    cfg = Config.fromfile(KD)
    cfg.model.teacher_ckpt = teacher_ckpt
    return cfg.model


@pytest.mark.parametrize('damage, what', [(truncate, 'cut short'), (corrupt, 'CRC-32'),
                                          (lambda p: truncate(p, 0), 'empty')])
def test_damaged_teacher_checkpoint_is_named(teacher_ckpt, damage, what):
    path = damage(teacher_ckpt)
    with pytest.raises(DamagedCheckpointError) as e:
        MODELS.build(_kd_cfg(path))
    msg = str(e.value)
    size = osp.getsize(path)
    assert msg.startswith(f"teacher checkpoint '{path}' is damaged ({size:,} bytes): ")
    assert what in msg
    assert 'Traceback' not in msg and e.value.__cause__ is None


def _distillation_checkpoint(teacher_ckpt, path):
    """A runner-style distillation checkpoint whose student is the CNN of ``teacher_ckpt``."""
    cnn = torch.load(teacher_ckpt)['state_dict']
    state = {f'student.{k}': v for k, v in cnn.items()}
    state['distill_losses.loss_fitnet.connector.weight'] = torch.zeros(4, 4)
    state['data_preprocessor.mean'] = torch.zeros(1)
    torch.save(dict(meta=dict(iter=10), state_dict=state), str(path))
    return str(path), cnn


def test_distillation_checkpoint_as_teacher_says_to_export_it(teacher_ckpt, tmp_path):
    path, _ = _distillation_checkpoint(teacher_ckpt, tmp_path / 'distill.pth')
    with pytest.raises(ValueError) as e:
        MODELS.build(_kd_cfg(path))
    msg = str(e.value)
    assert f"teacher checkpoint '{path}' is a distillation checkpoint" in msg
    assert f'extract_student.py {path} --classifier student.pth' in msg
    assert f"teacher_ckpt=dict(path='{path}', prefix='student.')" in msg


def test_distillation_checkpoint_as_teacher_with_prefix_loads_its_student(teacher_ckpt,
                                                                          tmp_path):
    path, cnn = _distillation_checkpoint(teacher_ckpt, tmp_path / 'distill.pth')
    model = MODELS.build(_kd_cfg(dict(path=path, prefix='student.')))
    loaded = model.teacher.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in cnn.items())
    with pytest.raises(ValueError, match="no keys under prefix 'teacher.'"):
        MODELS.build(_kd_cfg(dict(path=path, prefix='teacher.')))
    with pytest.raises(ValueError, match='teacher_ckpt as a dict takes'):
        MODELS.build(_kd_cfg(dict(file=path)))


# -- broken export input ----------------------------------------------------------------------
@pytest.mark.parametrize('damage, what', [(truncate, 'cut short'), (corrupt, 'CRC-32')])
def test_extract_student_names_a_damaged_input(teacher_ckpt, tmp_path, capsys, monkeypatch,
                                               damage, what):
    path, _ = _distillation_checkpoint(teacher_ckpt, tmp_path / 'distill.pth')
    damage(path)
    out = tmp_path / 'student.pth'
    monkeypatch.setattr(sys, 'argv', ['extract_student.py', path, '--classifier', str(out)])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(osp.join(ROOT, 'tools/model_converters/extract_student.py'),
                       run_name='__main__')
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert f"distillation checkpoint '{path}' is damaged ({osp.getsize(path):,} bytes)" in err
    assert what in err and 'Traceback' not in err
    assert not out.exists()


@pytest.mark.slow
@needs_data
def test_test_tool_names_a_damaged_checkpoint(tmp_path):
    """tools/test.py (any config: its plain CheckpointHook is replaced) refuses a damaged
    CHECKPOINT before evaluating, naming it."""
    ckpt = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(meta=dict(), state_dict={}), ckpt)
    truncate(ckpt)
    proc = subprocess.run(
        [PY, 'tools/test.py', CNN_CFG, ckpt, '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', 'test_dataloader.dataset.indices=64', 'test_dataloader.num_workers=0',
         'test_dataloader.persistent_workers=False'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert (f"load_from checkpoint '{ckpt}' is damaged ({osp.getsize(ckpt):,} bytes): the zip "
            'archive torch.save writes is incomplete') in proc.stderr
