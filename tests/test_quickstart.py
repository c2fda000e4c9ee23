"""tools/quickstart.py end to end on real Fashion-MNIST with a tiny budget: its rows, progress,
table, figure, and the cached teachers (and finished runs) reused by a second call."""
import os.path as osp
import re

import pytest

from conftest import FMNIST
from tools_helpers import PY, run_tool

pytestmark = [
    pytest.mark.slow,  # tools/ scripts in subprocesses
    pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                       reason='Fashion-MNIST not prepared: run tools/setup_env.sh'),
]
TINY = ['--train-size', '192', '--labelled', '64', '--teacher-train-size', '192',
        '--test-size', '200', '--epochs', '1', '--teacher-epochs', '1']


def table_rows(path):
    rows = [line for line in open(path).read().splitlines() if line.startswith('| small')]
    return [[c.strip() for c in r.strip('|').split('|')] for r in rows]


def test_reduced_quickstart_end_to_end(tmp_path):
    work, teachers = tmp_path / 'qs', tmp_path / 'teachers'
    common = ['--work-dir', str(work), '--teacher-dir', str(teachers), *TINY]
    out = run_tool([PY, 'tools/quickstart.py', '--seeds', '1', *common], timeout=1200).stdout
    assert re.search(r'ViT teacher: epoch 1/1 iter \d+/\d+\s+time left ~\d\d:\d\d:\d\d', out)
    rows = table_rows(work / 'results.md')
    assert [(r[0], r[1]) for r in rows] == [
        ('small ViT', 'no distillation'), ('small ViT', 'ViTKD + NKD'),
        ('small CNN', 'no distillation'), ('small CNN', 'Cross-Architecture KD')]
    assert 'CNN teacher' not in out  # one teacher for the four rows: the first run's time
    for r in rows:
        assert re.fullmatch(r'\d+\.\d\d ± 0\.00', r[3]), r
    assert open(work / 'results.md').read().startswith('Fashion-MNIST test top-1 (200 test')
    import matplotlib.image as mpimg
    assert mpimg.imread(work / 'curves.png').shape[:2] == (590, 1200)

    # a second call reuses the cached teachers and the finished run; --rerun trains it again
    ckpt = teachers / 'teacher_vit_5e' / 'epoch_1.pth'
    mtime = ckpt.stat().st_mtime
    out = run_tool([PY, 'tools/quickstart.py', '--seeds', '1', '--only', 'vit_vitkd_nkd',
                    *common]).stdout
    assert re.search(r'ViT teacher: top-1 \d+\.\d\d \(reused\)', out)
    assert re.search(r'vit_vitkd_nkd seed 0: top-1 \d+\.\d\d \(reused\)', out)
    assert ckpt.stat().st_mtime == mtime and 'CNN teacher' not in out
    out = run_tool([PY, 'tools/quickstart.py', '--seeds', '1', '--only', 'vit_vitkd_nkd', '--rerun',
                    *common]).stdout
    assert 'vit_vitkd_nkd seed 0: starting' in out
    assert '(reused)' in out.split('vit_vitkd_nkd seed 0')[0]
