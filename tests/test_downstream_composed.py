"""The composed Fashion-MNIST downstream benchmark (docs/downstream.md), reduced.

A tiny composed set (16 train / 8 val canvases of 128 px, real Fashion-MNIST items) is made
with ``ensure_composed``; the results table's two students (ViT patch 7 and ResNet_CIFAR w4)
are exported as extract_student.py does it. Then:

- every config of configs/downstream/composed_fmnist/ builds, reads the composed data at its
  real input size and takes one real training step (the data preprocessor, loss, backward and
  the config's optimizer), the transferred backbones starting exactly from the exported
  checkpoint (strict load, pos_embed kept at 4 x 4 and interpolated to 18 x 18 per forward);
- tools/benchmark/downstream.py at a budget of 2 iterations per run trains every row (seg
  teacher, student, TaT-seg student; Mask R-CNN and UPerNet with random and loaded backbones
  of both archs) and writes the table and the JSON; run again, it reuses every run;
- the backbone checks name what does not fit, before any training.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmkd  # noqa: F401
import mmkd.downstream  # noqa: F401
from conftest import ROOT
from mmkd.benchmark import downstream as bench
from mmkd.datasets.compose import ensure_composed
from mmkd.downstream import CheckpointMismatchError
from tools_helpers import PY, run_tool

torch.set_num_threads(1)  # 2 shared cores: the tool's runs below take one thread each
TRAIN, VAL = 16, 8
VIT_CFG = 'configs/results/vit-p7-w64_1xb128_fmnist-10pct.py'  # the results table's ViT student
# the downstream configs' CNN: the quarter-width student the transfer rows were measured with
# (docs/downstream.md; the results table's CNN is half width since)
CNN_CFG = 'configs/_base_/models/fmnist_resnet_w4.py'


@pytest.fixture(scope='module')
def composed(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('composed') / 'set')
    meta = ensure_composed(root, train_images=TRAIN, val_images=VAL)
    assert meta['counts']['train']['images'] == TRAIN
    return root


def _student(config):
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(osp.join(ROOT, config)).model)
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def students(tmp_path_factory):
    """Per arch: the exported backbone (extract_student), the distillation checkpoint it came
    from and a plain classifier checkpoint (a results-table baseline) of the same student."""
    from mmkd.apis import extract_student
    root = tmp_path_factory.mktemp('students')
    out = {}
    for arch, config in (('vit', VIT_CFG), ('cnn', CNN_CFG)):
        state = _student(config).state_dict()
        distill, classifier = root / f'{arch}_distill.pth', root / f'{arch}_classifier.pth'
        torch.save(dict(meta={}, state_dict={'student.' + k: v for k, v in state.items()}),
                   distill)
        torch.save(dict(meta={}, state_dict=state), classifier)
        backbone = root / f'{arch}_backbone.pth'
        extract_student(str(distill), backbone_out=str(backbone))
        out[arch] = dict(backbone=str(backbone), distill=str(distill),
                         classifier=str(classifier))
    return out


@pytest.fixture(scope='module')
def seg_teacher_ckpt(tmp_path_factory):
    """A randomly initialised segmentation teacher, saved as the runner saves it."""
    from mmengine.registry import DefaultScope

    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, bench.SEG_TEACHER)).model
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(cfg)
    path = str(tmp_path_factory.mktemp('teacher') / 'teacher.pth')
    torch.save(dict(meta={}, state_dict=model.state_dict()), path)
    return path


def _on_tiny_set(cfg, root):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
        cfg[loader].dataset.compose = dict(train_images=TRAIN, val_images=VAL)
    if cfg.default_scope == 'mmdet':
        cfg.val_evaluator.ann_file = osp.join(root, 'annotations', 'instances_val.json')


@pytest.mark.slow
def test_datasets_make_the_set_on_first_use(tmp_path):
    """A config's dataset makes a missing set (two processes at once: one makes it under the
    lock, the other waits and reuses it), then reads it; the layout defaults are the set's."""
    import multiprocessing as mp

    from mmkd.downstream.composed import (ComposedFMNISTCocoDataset, ComposedFMNISTSegDataset,
                                          prepare_composed)
    root = str(tmp_path / 'fresh')
    compose = dict(train_images=4, val_images=2)
    with mp.get_context('fork').Pool(2) as pool:
        metas = pool.starmap(prepare_composed, [(root, compose)] * 2)
    assert metas[0] == metas[1] and metas[0]['counts']['val']['images'] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fresh', 'fresh.lock']  # no leftovers
    seg = ComposedFMNISTSegDataset(data_root=root, split='val', compose=compose)
    det = ComposedFMNISTCocoDataset(data_root=root, split='train', compose=compose)
    assert len(seg) == 2 and len(det) == 4
    assert seg.metainfo['classes'][0] == 'background' and len(seg.metainfo['classes']) == 11
    assert det.metainfo['classes'][0] == 'T-shirt/top' and det[0]['instances']


SEG = [bench.SEG_TEACHER, bench.SEG_STUDENT, bench.SEG_TAT]
TRANSFER = [(arch, task, i) for arch in bench.TRANSFER for task in ('det', 'seg')
            for i in (0, 1)]


def _build(cfg):
    from mmengine.registry import DefaultScope, init_default_scope
    from mmengine.runner import Runner
    scope = cfg.default_scope
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
        torch.manual_seed(0)
        model = registry.build(cfg.model)
        model.init_weights()
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return model, loader


def _one_step(cfg, model, loader, size):
    """One real training step on the first composed batch; returns the losses."""
    from mmengine.optim import build_optim_wrapper
    batch = next(iter(loader))
    assert len(batch['inputs']) == bench.BATCH == cfg.train_dataloader.batch_size
    # grey, one channel, at the config's real input size
    assert all(tuple(x.shape) == (1, *size) for x in batch['inputs']), \
        [x.shape for x in batch['inputs']]
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.train_step(batch, optim)
    assert all(torch.isfinite(v).all() for v in losses.values()), losses
    changed = [k for k, v in model.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed, 'the step updated nothing'
    return losses, changed


@pytest.mark.parametrize('config', SEG, ids=lambda c: osp.basename(c)[:30])
def test_seg_distillation_config_steps(config, composed, seg_teacher_ckpt):
    cfg = Config.fromfile(osp.join(ROOT, config))
    _on_tiny_set(cfg, composed)
    if config == bench.SEG_TAT:
        cfg.model.teacher_ckpt = seg_teacher_ckpt
    model, loader = _build(cfg)
    shapes = {}

    def record(role):
        def hook(module, args, output):
            shapes.setdefault(role, tuple(output.shape[1:]))  # returns None: output unchanged
        return hook

    if config == bench.SEG_TAT:
        for role in ('student', 'teacher'):
            getattr(model, role).decode_head.sep_bottleneck.register_forward_hook(record(role))
    losses, changed = _one_step(cfg, model, loader, (128, 128))
    assert 'decode.loss_ce' in losses
    if config == bench.SEG_TAT:
        # TaT-seg on the decoders' last features: both 32 x 32 maps at 128 px
        assert {'loss_tat', 'tat.pg', 'tat.anchor'} <= set(losses), losses
        assert shapes == dict(student=(64, 32, 32), teacher=(128, 32, 32))
        assert any(k.startswith('distill_losses.loss_tat.') for k in changed)
        assert not any(k.startswith('teacher') for k in model.state_dict())


@pytest.mark.parametrize('arch,task,scratch', TRANSFER,
                         ids=lambda v: {0: 'loaded', 1: 'scratch'}.get(v, v)
                         if not isinstance(v, str) else v)
def test_transfer_config_loads_strictly_and_steps(arch, task, scratch, composed, students):
    config = bench.TRANSFER[arch][task][scratch]
    cfg = Config.fromfile(osp.join(ROOT, config))
    _on_tiny_set(cfg, composed)
    exported = torch.load(students[arch]['backbone'])['state_dict']
    if scratch:
        assert cfg.model.backbone.init_cfg is None or isinstance(cfg.model.backbone.init_cfg,
                                                                 list)
    else:
        assert cfg.model.backbone.init_cfg.type == 'StrictPretrained'
        assert cfg.model.backbone.init_cfg.checkpoint == cfg.backbone_ckpt
        cfg.model.backbone.init_cfg.checkpoint = students[arch]['backbone']
    model, loader = _build(cfg)
    start = model.backbone.state_dict()
    assert start.keys() == exported.keys()
    if scratch:
        if arch == 'cnn':  # the student's own init: every block's last BN zeroed
            assert all(float(v.abs().sum()) == 0 for k, v in start.items()
                       if k.endswith('bn2.weight'))
    else:
        different = [k for k in exported if not torch.equal(start[k], exported[k])]
        assert not different, f'backbone differs from the exported student: {different}'
    if arch == 'vit':
        assert start['pos_embed'].shape == (1, 1 + 4 * 4, 64)  # kept as trained
    # the ViT reads 126 px (18 x 18 patches of 7 px), the CNN the 128 px canvas
    size = (126, 126) if arch == 'vit' else (128, 128)
    losses, changed = _one_step(cfg, model, loader, size)
    if arch == 'vit':
        feats = model.backbone(torch.zeros(1, 1, *size))
        assert feats[-1].shape[-2:] == (18, 18)
    key = 'loss_mask' if task == 'det' else 'decode.loss_ce'
    assert key in losses, losses
    assert any(k.startswith('backbone.') for k in changed)


def test_backbone_checks(students, tmp_path):
    vit, cnn = students['vit'], students['cnn']
    # the three forms of a student checkpoint, told apart by their keys
    for arch in ('vit', 'cnn'):
        for kind, prefix in (('backbone', ''), ('classifier', 'backbone.'),
                             ('distill', 'student.backbone.')):
            b = bench.inspect_backbone('x', students[arch][kind])
            assert (b.arch, b.prefix) == (arch, prefix)
            bench.check_backbone(b)  # loads strictly
    rows = bench.parse_backbones(['random', f'v={vit["backbone"]}', f'c={cnn["classifier"]}'])
    assert [(b.name, b.arch, b.is_random) for b in rows] == [
        ('random-vit', 'vit', True), ('v', 'vit', False), ('random-cnn', 'cnn', True),
        ('c', 'cnn', False)]
    assert [b.name for b in bench.parse_backbones(['random'])] == ['random-vit', 'random-cnn']
    # a wider ViT than the configs' is an error naming the mis-shaped keys
    state = torch.load(vit['backbone'])['state_dict']
    wide = {k: torch.cat([v, v], -1) if k == 'pos_embed' else v for k, v in state.items()}
    torch.save(dict(state_dict=wide), tmp_path / 'wide.pth')
    with pytest.raises(CheckpointMismatchError, match='pos_embed'):
        bench.check_backbone(bench.inspect_backbone('wide', str(tmp_path / 'wide.pth')))
    torch.save(dict(state_dict={'fc.weight': torch.zeros(2, 2)}), tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='neither the ViT nor the CNN'):
        bench.inspect_backbone('other', str(tmp_path / 'other.pth'))
    with pytest.raises(ValueError, match='NAME=PATH'):
        bench.parse_backbones(['just-a-path.pth'])


def test_markdown_reports_mean_std_and_gain():
    stats = lambda *v: dict(values=list(v), mean=float(np.mean(v)),  # noqa: E731
                            std=float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
    records = dict(
        seg=[dict(row='baseline', name='student', miou=stats(50.0, 52.0), delta=None,
                  p_value=None),
             dict(row='tat', name='student + TaT-seg', miou=stats(53.0, 55.0),
                  **bench._compare([53.0, 55.0], [50.0, 52.0]))],
        transfer=[dict(backbone='vit_kd', arch='vit', checkpoint='/x.pth',
                       box_map=dict(stats(30.0), delta=1.5, p_value=None),
                       mask_map=dict(values=[], mean=None, std=None), miou=stats(40.0))])
    text = bench.markdown(records, 'header')
    assert '| student + TaT-seg | 2 | 54.00 ± 1.41 | 53.00, 55.00 | +3.00 (p 0.' in text
    assert '| vit_kd | vit | `/x.pth` | 30.00 (+1.50) | not measured | 40.00 |' in text


@pytest.mark.slow
def test_benchmark_tool_end_to_end(composed, students, tmp_path):
    work = tmp_path / 'bench'
    args = [PY, 'tools/benchmark/downstream.py', '--data-root', composed,
            '--train-images', str(TRAIN), '--val-images', str(VAL), '--iters', '2',
            '--seeds', '1', '--work-dir', str(work), '--backbones', 'random',
            f'vit_kd={students["vit"]["backbone"]}', f'cnn_base={students["cnn"]["classifier"]}']
    proc = run_tool(args, env=dict(OMP_NUM_THREADS='1'))
    out = proc.stdout
    # progress: every run starts and ends with its metric, with the time left
    assert out.count(': starting') == 11, out
    assert 'time left ~' in out and '[11/11 done]' in out
    assert 'mIoU' in out and 'box mAP' in out

    content = json.loads((work / 'downstream.json').read_text())
    assert content['meta']['iterations'] == dict(student=2, teacher=2)
    assert [r['row'] for r in content['seg']] == ['teacher', 'baseline', 'tat']
    assert all(len(r['miou']['values']) == 1 for r in content['seg'])
    assert content['seg'][2]['delta'] is not None
    assert [r['backbone'] for r in content['transfer']] == [
        'random-vit', 'vit_kd', 'random-cnn', 'cnn_base']
    for r in content['transfer']:
        for key in ('box_map', 'mask_map', 'miou'):
            assert len(r[key]['values']) == 1, (r['backbone'], key, r[key])
    assert content['transfer'][3]['prefix'] == 'backbone.'
    assert len(content['runs']) == 11
    # the loaded runs loaded the students strictly
    log = (work / 'det_vit_kd_seed0' / 'train_stdout.log').read_text()
    assert "StrictPretrained: PlainViT loaded all 54 tensors" in log
    log = (work / 'seg_cnn_base_seed0' / 'train_stdout.log').read_text()
    assert 'StrictPretrained: ResNet_CIFAR loaded all 96 tensors' in log

    table = (work / 'downstream.md').read_text()
    for name in ('teacher (DeepLabV3+', 'student (DeepLabV3+', 'student + TaT-seg',
                 '| random-vit |', '| vit_kd |', '| random-cnn |', '| cnn_base |'):
        assert name in table, table
    assert 'not measured' not in table

    # run again: everything is reused, nothing trains
    again = run_tool(args, env=dict(OMP_NUM_THREADS='1')).stdout
    assert '0 run(s) to train, 11 reused' in again and ': starting' not in again
    assert json.loads((work / 'downstream.json').read_text())['seg'] == content['seg']


# ---------------------------------------------------------------- full-size paper configs
def _full_size_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'full_size_step', osp.join(ROOT, 'tools', 'benchmark', 'full_size_step.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One real train step at the recipes' real input size (tools/benchmark/full_size_step.py), for
# the two cheapest configs that cover both libraries and both backbone kinds: 15 s and 25 s
# here (1 thread). The other six take 24-64 s each (docs/downstream.md): the tool runs all
# eight in about 4 minutes.
@pytest.mark.slow  # paper-size steps
@pytest.mark.parametrize('name,size', [
    ('mask-rcnn_r18-student_fpn_1x_coco.py', (800, 1333)),
    ('upernet_deit-t-student_mln_8xb2-160k_ade20k-512x512.py', (512, 512)),
])
def test_full_size_config_takes_a_real_step(name, size):
    tool = _full_size_tool()
    r = tool.step(osp.join(ROOT, 'configs', 'downstream', name), batch=2)
    assert tuple(r['input']) == size and r['batch'] == 2
    assert np.isfinite(r['loss']) and len(r['step_s']) == 1
