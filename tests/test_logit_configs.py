"""The ImageNet configs of the logit methods and FitNet build and take one real train step."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmkd  # noqa: F401
from mmkd.registry import MODELS
from conftest import ROOT, random_batch

METHODS = ('kd', 'nkd', 'dkd', 'fitnet', 'deit')
CONFIGS = sorted(p for m in METHODS for p in glob.glob(osp.join(ROOT, 'configs', m, '*.py'))
                 if 'fmnist' not in p)  # the Fashion-MNIST ones run in test_tools


def test_every_logit_method_has_an_imagenet_config():
    assert {osp.basename(osp.dirname(c)) for c in CONFIGS} == set(METHODS)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds_and_steps(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmkd' and cfg.model.teacher_ckpt  # one obvious line
    cfg.model.teacher_ckpt = None
    cfg.model.data_preprocessor = cfg.data_preprocessor
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmkd'), pytest.warns(UserWarning, match='RANDOM'):
        model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    log = model.train_step(random_batch(n=2, size=224, channels=3, num_classes=1000), wrapper)
    distill = [k for k in log if k.startswith('loss_') and k != 'loss_cls']
    assert distill and all(torch.isfinite(log[k]) for k in log)
