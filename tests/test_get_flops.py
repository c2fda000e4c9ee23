"""tools/analysis/get_flops.py: parameters and FLOPs of student, teacher and distillation
modules, and the teacher's share of a step, on the results table's ViTKD and CSKD configs."""
import json
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import mmkd  # noqa: F401
from mmkd.analysis.complexity import complexity
from mmkd.models.builder import build_model
from mmkd.registry import MODELS
from conftest import ROOT

VITKD = 'configs/results/vit-p7-w64_vit-p7-w128_1xb128_fmnist-10pct_vitkd.py'
CSKD = 'configs/results/deit-p7-w64_resnet-w16_1xb128_fmnist-10pct_cskd.py'


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def independent_params(config):
    """Parameter counts from models built here, not by the tool."""
    cfg = Config.fromfile(config)
    student = build_model(cfg.model.student, 'student')
    teacher = build_model(cfg.model.teacher, 'teacher')
    model_cfg = cfg.model.copy()
    model_cfg.teacher_ckpt = None
    model_cfg.data_preprocessor = cfg.data_preprocessor
    with pytest.warns(UserWarning, match='RANDOM'):
        distiller = MODELS.build(model_cfg)
    return dict(student=numel(student), teacher=numel(teacher),
                distill_losses=numel(distiller.distill_losses),
                **{name: numel(loss) for name, loss in distiller.distill_losses.items()})


@pytest.mark.parametrize('config', [VITKD, CSKD])
def test_numbers(config):
    result = complexity(config)
    parts = result['parts']
    assert result['input_shape'] == (1, 28, 28)
    for name, count in independent_params(config).items():
        assert parts[name]['params'] == count, name
    assert parts['teacher']['trainable_params'] == 0
    assert parts['student']['trainable_params'] == parts['student']['params']
    for name in ('student', 'teacher', 'distill_losses'):
        assert parts[name]['params'] > 0 or name == 'distill_losses'
        assert parts[name]['flops'] > 0, name
    assert 0 < result['teacher_share'] < 1
    t, s, d = (parts[k]['flops'] for k in ('teacher', 'student', 'distill_losses'))
    assert result['step_flops'] == t + 3 * (s + d)
    assert result['teacher_share'] == pytest.approx(t / (t + 3 * (s + d)))


def test_vitkd_modules_have_parameters_and_flops():
    parts = complexity(VITKD)['parts']
    # the generation branch's mask token and blocks, the mimicking projectors
    assert parts['loss_vitkd']['params'] > 0 and parts['loss_vitkd']['flops'] > 0


def test_attention_products_are_counted():
    """MMEngine alone skips scaled_dot_product_attention: the tool adds q k^T and attn v,
    here 4 blocks x 4 heads x 17 tokens^2 x (16 + 16) for the p7 w64 ViT student."""
    from mmengine.analysis import FlopAnalyzer
    student = build_model(Config.fromfile(VITKD).model.student, 'student').eval()
    with torch.no_grad():
        plain = FlopAnalyzer(student, (torch.zeros(1, 1, 28, 28), ))
        plain.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        without = plain.total()
    assert complexity(VITKD)['parts']['student']['flops'] - without == 4 * 4 * 17 * 17 * 32


@pytest.mark.slow
def test_cli_prints_and_writes_json(tmp_path):
    out = tmp_path / 'flops.json'
    proc = subprocess.run([sys.executable, 'tools/analysis/get_flops.py', CSKD, '--shape', '28',
                           '28', '--json', str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ('student', 'teacher', 'loss_cskd', 'loss_deit', 'distill_losses'):
        assert f'| {name} ' in proc.stdout
    share = 100 * result['teacher_share']
    assert f'teacher share {share:.1f} %' in proc.stdout and 0 < share < 100
    assert result['parts']['loss_cskd']['flops'] > 0  # the student's dist head on each patch
