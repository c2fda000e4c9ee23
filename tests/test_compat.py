"""torch >= 2.6 loads with weights_only=True; mmkd allow-lists MMEngine's checkpoint types only."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

import mmkd  # noqa: F401


class Smuggler:
    """Unpickling this runs code (creates a file): what a malicious .pth does."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target, ))


def test_mmengine_checkpoint_objects_load(tmp_path):
    buf = HistoryBuffer()
    buf.update(np.float64(1.5))
    buf.update(2.0)
    ckpt = dict(state_dict=dict(w=torch.ones(2)),
                message_hub=dict(log_scalars={'train/loss': buf},
                                 runtime_info=dict(epoch=np.int64(3), arr=np.arange(3))))
    path = tmp_path / 'ok.pth'
    torch.save(ckpt, path)
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 2.0
    assert loaded['message_hub']['runtime_info']['epoch'] == 3


def test_checkpoint_smuggling_a_callable_is_refused(tmp_path):
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), payload=Smuggler(str(target))), path)
    with pytest.raises(pickle.UnpicklingError, match='mkdir|Unsupported global'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not target.exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not target.exists()


def test_getattr_is_allowed_only_for_history_buffer_statistics(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (getattr, (np.ndarray, '__class__'))

    path = tmp_path / 'getattr.pth'
    torch.save(dict(x=Sneaky()), path)
    with pytest.raises(pickle.UnpicklingError, match='refused'):
        torch.load(path)


@pytest.mark.slow
def test_history_buffer_loads_in_a_fresh_process(tmp_path):
    # HistoryBuffer's method registry is empty until a first buffer is created: loading a
    # checkpoint must not depend on that.
    import subprocess
    import sys
    buf = HistoryBuffer()
    buf.update(1.0)
    path = tmp_path / 'hb.pth'
    torch.save(dict(message_hub=dict(log_scalars={'loss': buf})), path)
    code = ('import mmkd, torch; c = torch.load(%r); '
            "print(c['message_hub']['log_scalars']['loss'].mean())" % str(path))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('1.0')
