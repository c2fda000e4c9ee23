"""tools/quickstart.py end to end on real Fashion-MNIST with a tiny budget."""
import importlib.util
import os.path as osp
import re
import statistics
from types import SimpleNamespace

import pytest

from conftest import FMNIST, ROOT
from tools_helpers import PY, run_tool

pytestmark = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
TINY = ['--train-size', '192', '--teacher-train-size', '192', '--test-size', '200',
        '--epochs', '1', '--teacher-epochs', '1']


def quickstart_module():
    spec = importlib.util.spec_from_file_location('quickstart', osp.join(ROOT, 'tools', 'quickstart.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_table(path):
    rows = [line for line in open(path).read().splitlines() if line.startswith('| small')]
    return {tuple(c.strip() for c in r.strip('|').split('|'))[1]: r for r in rows}


def test_reduced_quickstart_end_to_end(tmp_path):
    work = tmp_path / 'qs'
    out = run_tool([PY, 'tools/quickstart.py', '--work-dir', str(work), '--seeds', '1', *TINY]).stdout
    assert re.search(r'\[1/8\] CNN teacher: epoch 1/1 iter \d+/\d+\s+time left', out)
    table = parse_table(work / 'results.md')
    assert set(table) == {'no distillation', 'KD', 'CSKD', 'ViTKD', 'Cross-Architecture KD'} and \
        len(open(work / 'results.md').read().split('| small')) - 1 == 6  # one row per method
    for row in table.values():
        assert re.search(r'\| \d+\.\d\d ± \d+\.\d\d \|', row), row
    import matplotlib.image as mpimg
    png = mpimg.imread(work / 'curves.png')
    assert png.shape[0] == 450 and png.shape[1] == 1200 and png.shape[2] in (3, 4)

    # a second run reuses the cached teachers
    ckpt = work / 'teacher_cnn' / 'epoch_1.pth'
    mtime = ckpt.stat().st_mtime
    out = run_tool([PY, 'tools/quickstart.py', '--work-dir', str(work), '--seeds', '1',
                    '--only', 'vit_kd', *TINY]).stdout
    assert 'CNN teacher: reusing' in out and ckpt.stat().st_mtime == mtime
    assert '[1/1] vit_kd seed 0' in out


def test_results_table_mean_std_and_delta(tmp_path):
    qs = quickstart_module()
    args = SimpleNamespace(work_dir=str(tmp_path), seeds=2, epochs=2, train_size=10,
                           teacher_epochs=3, teacher_train_size=20)
    results = dict(vit_baseline=[80.0, 82.0], vit_kd=[83.0, 84.0], cnn_baseline=[70.0, 70.0],
                   cnn_cakd=[71.0, 73.0])
    text = qs.write_results(args, results, dict(teacher_cnn=88.5, teacher_vit=86.25))
    kd = [line for line in text.splitlines() if '| KD |' in line][0]
    assert f'{statistics.mean([83.0, 84.0]):.2f} ± {statistics.stdev([83.0, 84.0]):.2f}' in kd
    assert '+2.50' in kd and 'CNN teacher (88.50)' in kd
    assert '| 72.00 ± 1.41 | +2.00 |' in text
    assert open(tmp_path / 'results.md').read().strip().endswith(text.splitlines()[-1])
