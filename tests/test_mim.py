"""Packaging for OpenMMLab's mim: a wheel of mmkd carries ``mmkd/.mim/`` (configs, tools, the
model index), an editable install links it, and, when openmim is installed, ``mim train``,
``mim test`` and ``mim search`` work on an installed mmkd (a wheel installed into a temporary
directory: 2 training iterations on 64 real Fashion-MNIST images)."""
import os
import os.path as osp
import shutil
import subprocess
import zipfile

import pytest

from conftest import FMNIST, ROOT
from tools_helpers import PY, run_tool

pytestmark = pytest.mark.slow  # pip and mim in subprocesses

#: what setup.py needs to build mmkd (the rest of the checkout stays out of the copy)
SOURCES = ('setup.py', 'MANIFEST.in', 'model-index.yml', 'mmkd', 'configs', 'tools',
           'requirements')
KD = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'


def _source_copy(dst):
    os.makedirs(dst)
    for name in SOURCES:
        src = osp.join(ROOT, name)
        if osp.isdir(src):
            # the checkout's own mmkd/.mim (links of an editable install) is setup.py's to make
            shutil.copytree(src, osp.join(dst, name), symlinks=True, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc', '.mim'))
        else:
            shutil.copy(src, osp.join(dst, name))
    return dst


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """mmkd's wheel, built from a copy of the sources (the build writes into its source tree)."""
    work = tmp_path_factory.mktemp('mim')
    src = _source_copy(str(work / 'src'))
    run_tool([PY, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
              '-w', str(work / 'dist'), src])
    (path, ) = (work / 'dist').glob('mmkd-*.whl')
    return work, path


def test_wheel_carries_configs_tools_and_model_index(wheel):
    work, path = wheel
    names = set(zipfile.ZipFile(path).namelist())
    mim = {n[len('mmkd/.mim/'):] for n in names if n.startswith('mmkd/.mim/')}
    expected = {'model-index.yml', 'tools/train.py', 'tools/test.py', 'tools/dist_train.sh',
                'tools/model_converters/extract_student.py', KD,
                'configs/_base_/default_runtime.py', 'configs/_base_/models/fmnist_vit_small.py'}
    expected |= {f'configs/{m}/metafile.yml' for m in os.listdir(osp.join(ROOT, 'configs'))
                 if osp.isfile(osp.join(ROOT, 'configs', m, 'metafile.yml'))}
    assert expected <= mim, sorted(expected - mim)
    # every config and tool of the checkout, and nothing compiled
    for folder, exts in (('configs', ('.py', '.yml')), ('tools', ('.py', '.sh'))):
        for root, _, files in os.walk(osp.join(ROOT, folder)):
            for f in files:
                rel = osp.relpath(osp.join(root, f), ROOT)
                if f.endswith(exts) and '__pycache__' not in rel:
                    assert rel in mim, f'{rel} is not in the wheel'
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    with zipfile.ZipFile(path) as z, open(osp.join(ROOT, 'model-index.yml'), 'rb') as f:
        assert z.read('mmkd/.mim/model-index.yml') == f.read()
    # the build copied (a wheel cannot hold links)
    assert not osp.islink(work / 'src' / 'mmkd' / '.mim' / 'configs')


def _mim_extension(src, command):
    """setup.py's add_mim_extension() as it runs under ``setup.py <command>``."""
    subprocess.run([PY, '-c', f"import sys; sys.argv = ['setup.py', '{command}']; import setup; "
                    'setup.add_mim_extension()'], cwd=src, check=True)


def test_editable_install_links_the_checkout(tmp_path):
    src = _source_copy(str(tmp_path / 'src'))
    # what `pip install -e .` runs (setuptools' editable_wheel command), without installing
    _mim_extension(src, 'editable_wheel')
    mim = osp.join(src, 'mmkd', '.mim')
    for name in ('configs', 'tools', 'model-index.yml'):
        link = osp.join(mim, name)
        assert osp.islink(link) and not osp.isabs(os.readlink(link)), name
        assert osp.samefile(link, osp.join(src, name)), name
    # a later wheel build replaces the links by copies
    _mim_extension(src, 'bdist_wheel')
    assert osp.isdir(osp.join(mim, 'configs')) and not osp.islink(osp.join(mim, 'configs'))
    assert osp.isfile(osp.join(mim, 'configs', 'kd', 'metafile.yml'))


MIM = osp.join(osp.dirname(PY), 'mim')


@pytest.mark.skipif(not osp.isfile(MIM), reason='openmim is not installed (requirements/mim.txt)')
@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                    reason='Fashion-MNIST not prepared (tools/setup_env.sh)')
def test_mim_train_test_and_search_an_installed_mmkd(wheel):
    work, path = wheel
    site = work / 'site'
    run_tool([PY, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(site), str(path)])
    # the installed mmkd comes first (mim finds a package's files through its distribution);
    # run from the checkout: the configs name model files and data relative to it
    env = dict(PYTHONPATH=str(site), OMP_NUM_THREADS='1')
    config = osp.basename(KD)  # mim looks a bare name up in the package's .mim/configs
    small = ['model.teacher_ckpt=None', 'train_dataloader.dataset.indices=64',
             'train_dataloader.batch_size=32', 'val_dataloader.dataset.indices=64',
             'test_dataloader.dataset.indices=64', 'train_cfg.max_epochs=1',
             'default_hooks.logger.interval=1']
    out = run_tool([MIM, 'train', 'mmkd', config, '--gpus', '0', '--work-dir',
                    str(work / 'train'), '--cfg-options', *small], env=env).stdout
    mim_dir = osp.join(str(site), 'mmkd', '.mim')
    assert f'{mim_dir}/tools/train.py {mim_dir}/configs/kd/{config}' in out
    assert 'Training finished successfully' in out
    ckpt = work / 'train' / 'epoch_1.pth'
    assert ckpt.is_file()

    out = run_tool([MIM, 'test', 'mmkd', config, '--checkpoint', str(ckpt), '--gpus', '0',
                    '--work-dir', str(work / 'test'), '--cfg-options', *small], env=env).stdout
    assert f'{mim_dir}/tools/test.py' in out and 'Testing finished successfully' in out

    out = run_tool([MIM, 'search', 'mmkd'], env=env).stdout
    for name in ('kd_resnet18_resnet34_8xb32_in1k', 'vitkd_deit-t_deit3-s_8xb128_in1k',
                 'cskd_deit-s_regnety-16gf_8xb128_in1k', 'cakd_resnet50_vit-b16_8xb32_in1k'):
        assert f'config id: {name}' in out, name
