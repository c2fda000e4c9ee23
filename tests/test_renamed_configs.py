"""Renamed configs (mmkd/utils/renamed_configs.py): every name follows the README's scheme, an
old name is an error naming the new one, and the changelog lists every rename."""
import glob
import os.path as osp
import re
from types import SimpleNamespace

import pytest

from conftest import ROOT
from mmkd.utils import load_run_config
from mmkd.utils.renamed_configs import RENAMED_CONFIGS, renamed_config_error

CONFIGS = osp.join(ROOT, 'configs')
# {student}_{teacher}_{N}xb{B}_{data}[_{variant}] (a model alone: no teacher)
CLS_NAME = re.compile(r'[a-z0-9.-]+(_[a-z0-9.-]+)?_\d+xb\d+_[a-z0-9-]+(_[a-z0-9-]+)?\.py')


def test_old_names_are_gone_and_new_names_exist():
    for old, new in RENAMED_CONFIGS.items():
        assert not osp.exists(osp.join(CONFIGS, old)), old
        assert osp.isfile(osp.join(CONFIGS, new)), new


@pytest.mark.parametrize('folder', ['cakd', 'cskd', 'deit', 'dkd', 'fitnet', 'fmnist', 'kd',
                                    'nkd', 'results', 'vitkd'])
def test_classification_configs_follow_the_scheme(folder):
    names = [osp.basename(p) for p in glob.glob(osp.join(CONFIGS, folder, '*.py'))]
    assert names
    assert [n for n in names if not CLS_NAME.fullmatch(n)] == []


def test_an_old_name_is_an_error_naming_the_new_one():
    old = osp.join('configs', 'vitkd', 'deit-t_deit3-s.py')
    assert renamed_config_error(osp.join(ROOT, 'configs/vitkd/deit-t_deit3-s_8xb128_in1k.py')) \
        is None  # exists
    assert renamed_config_error('configs/vitkd/no_such.py') is None  # not a renamed one
    args = SimpleNamespace(config=old, launcher='none', cfg_options=None, work_dir=None)
    with pytest.raises(FileNotFoundError, match=r'deit-t_deit3-s\.py: this config was renamed '
                                                r'to configs/vitkd/deit-t_deit3-s_8xb128_in1k'):
        load_run_config(args)
    composed = 'configs/downstream/composed_fmnist/' + osp.basename(
        'tat_deeplabv3plus_r18-w32_r34-w32-d8_1xb8-6e_composed-fmnist-128x128.py')
    assert '_composed-fmnist-128x128_tat.py' in renamed_config_error(composed)


def test_the_changelog_lists_every_rename():
    text = open(osp.join(ROOT, 'docs', 'changelog.md')).read()
    for old, new in RENAMED_CONFIGS.items():
        assert f'| `configs/{old}` | `configs/{new}` |' in text
