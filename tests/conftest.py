import os
import os.path as osp
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # tests/reference.py
os.chdir(ROOT)  # configs use paths relative to the repo root (data/fashion_mnist)

FMNIST = osp.join(ROOT, 'data', 'fashion_mnist')
MODELS_DIR = osp.join(ROOT, 'configs', '_base_', 'models')
CNN = osp.join(MODELS_DIR, 'fmnist_resnet_small.py')
VIT = osp.join(MODELS_DIR, 'fmnist_vit_small.py')
DEIT = osp.join(MODELS_DIR, 'fmnist_deit_small.py')
#: the Fashion-MNIST models' preprocessor (configs/_base_/datasets/fashion_mnist.py)
PRE = dict(type='ClsDataPreprocessor', num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def mmkd_default_scope():
    """Each test starts in the mmkd scope: a Runner of an earlier test (mmdet, mmseg) leaves
    MMEngine's process-wide current scope behind, and builds would resolve in its registry."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmkd'):
        yield


_RUNNERS = iter(range(1 << 30))


def runner_from_cfg(cfg):
    """``Runner.from_cfg`` under an experiment name of its own. MMEngine names the logger and
    the MessageHub after the start time by default, so two runners built within one second
    share them: the second one's log lands in the first one's work_dir."""
    from mmengine.runner import Runner
    cfg.experiment_name = f'{osp.basename(cfg.work_dir)}_{next(_RUNNERS)}'
    return Runner.from_cfg(cfg)


def random_batch(n=4, size=28, channels=1, num_classes=10, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    return dict(
        inputs=[torch.randint(0, 256, (channels, size, size), generator=g, dtype=torch.uint8)
                for _ in range(n)],
        data_samples=[DataSample().set_gt_label(int(torch.randint(0, num_classes, (1, ), generator=g)))
                      for _ in range(n)])


@pytest.fixture
def teacher_ckpt(tmp_path):
    """A checkpoint of a (randomly initialised) small CNN teacher, as the runner would save it."""
    from mmkd.models.builder import build_model
    torch.manual_seed(0)
    teacher = build_model(CNN, 'teacher')
    teacher.init_weights()
    path = str(tmp_path / 'teacher.pth')
    torch.save(dict(meta=dict(), state_dict=teacher.state_dict()), path)
    return path
