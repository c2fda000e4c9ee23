"""Test helper (imported by a test config's ``custom_imports``): an atomic checkpoint backend
that stops half-way through writing the file named by ``$MMKD_TEST_SLOW_SAVE`` (e.g.
``iter_6.pth``), so that a test can SIGKILL the run while that checkpoint is being written."""
import os
import os.path as osp
import time

from mmengine.fileio import register_backend

from mmkd.utils.checkpoint import AtomicLocalBackend


class SlowAtomicBackend(AtomicLocalBackend):

    def _write(self, f, data: bytes, path: str) -> None:
        if osp.basename(path) != os.environ.get('MMKD_TEST_SLOW_SAVE'):
            return super()._write(f, data, path)
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        os.fsync(f.fileno())
        time.sleep(float(os.environ.get('MMKD_TEST_SLOW_SAVE_SECONDS', '300')))
        f.write(data[half:])


register_backend('mmkd_test_slow_atomic', SlowAtomicBackend, force=True)
