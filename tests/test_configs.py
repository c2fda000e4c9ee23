"""Every config under configs/ but ``_base_``: it reads as its method says, builds with a random
teacher (``teacher_ckpt=None``) and takes one real train step, at a reduced input size where the
method allows it, on a random batch of the config's channels and classes.

A classifier's or distiller's step also checks what DDP without ``find_unused_parameters=True``
needs: its reducer expects a gradient for every parameter it syncs in every backward, so every
trainable parameter must get one in the backward of its update (Cross-Architecture KD: one
backward per update, each over exactly its own parameters; test_ddp.py runs two processes).

Checks of one method or config are the small tables of functions below, matched by path pattern
at three moments: the config as read, the model as built, the step as taken. The builds and
steps of paper-size models (ImageNet ViTs at 224 px, ResNet-101 DeepLabV3+, the COCO / ADE20K
recipes: seconds each on 2 cores) are ``slow``; configs that are only built say why where they
are left out.
"""
import copy
import fnmatch
import functools
import glob
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import DefaultScope, init_default_scope

import mmkd  # noqa: F401
import mmkd.downstream  # noqa: F401
from mmkd.models.builder import build_model, model_config
from mmkd.models.losses.cskd import last_tensor
from mmkd.registry import MODELS
from conftest import ROOT, random_batch

torch.set_num_threads(1)  # shared 2-core machine: a second spinning thread slows each step
# mmengine's pkg_resources and mmpretrain's DeiT3 deprecation notices: not ours to fix
pytestmark = pytest.mark.filterwarnings('ignore:pkg_resources is deprecated',
                                        'ignore:The `use_layer_scale`')

CONFIGS = sorted(osp.relpath(p, ROOT)
                 for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in osp.relpath(p, ROOT).split(osp.sep))
LOGIT_METHODS = ('kd', 'nkd', 'dkd', 'fitnet', 'deit')

#: input size of the step where the method needs its paper size: ViTKD, CSKD and
#: Cross-Architecture KD read their token grid from the backbones' img_size at build time, so a
#: smaller image would be another method; any other classifier steps at 64 px (ImageNet-size
#: models) or 28 px (the Fashion-MNIST ones, one channel)
FULL_SIZE = {'configs/vitkd/*': 224, 'configs/cskd/deit-*_in1k.py': 224,
             'configs/cakd/*_in1k*': 224}
#: images per step where the pair is heavy on CPU (~10 s a step on 2 cores): one image runs
#: every code path
BATCH = {'configs/vitkd/deit-s_*': 1, 'configs/vitkd/deit-b_*': 1,
         'configs/cskd/deit-*_in1k.py': 1}
#: COCO / ADE20K recipes: one loss step at this size (at 1024 / 512 px it is too slow on 2
#: shared cores; tools/benchmark/full_size_step.py takes the real one)
DOWNSTREAM_STEP_SIZE = 128
#: only built, not stepped:
BUILD_ONLY = (
    # a ResNet-101 DeepLabV3+ teacher at 512 px is too slow for this CPU test: the student's
    # and teacher's taps are checked at 64 px, the loss on the tap shapes of a 512 px crop
    'configs/tat/deeplabv3plus_*',
    # their step reads the composed set and loads the exported students: it runs on that data
    # in test_downstream_composed.py
    'configs/downstream/composed_fmnist/*',
)
#: parameters a config leaves without a gradient, by name prefix. The CSKD student trained
#: alone (its baseline) has no loss on its distillation-token head: under DDP it needs
#: ``model_wrapper_cfg=dict(find_unused_parameters=True)``, which the config does not set
UNUSED = {'configs/cskd/deit-small_1xb128_fmnist.py': ('head.layers.head_dist.', )}
#: paper-size models (ImageNet ViT-B/L, RegNetY-16GF, ResNet-101, Mask R-CNN): seconds each
SLOW = tuple(FULL_SIZE) + ('configs/tat/deeplabv3plus_*', 'configs/downstream/*.py')


def fits(path, pattern):
    """``fnmatch`` part by part: a ``*`` stays inside one folder or file name."""
    parts, wanted = path.split('/'), pattern.split('/')
    return len(parts) == len(wanted) and all(map(fnmatch.fnmatch, parts, wanted))


def _match(path, table):
    """The value of ``table``'s first pattern ``path`` fits; for a tuple, whether one fits."""
    if isinstance(table, tuple):
        return any(fits(path, k) for k in table)
    return next((v for k, v in table.items() if fits(path, k)), None)


def _params():
    return [pytest.param(p, id=p[len('configs/'):],
                         marks=[pytest.mark.slow] if _match(p, SLOW) else [])
            for p in CONFIGS]


# -- checks of one method or config, by moment ----------------------------------------------
CHECKS = []  # (pattern, moment, function)


def check(pattern, moment):
    """Register ``function`` for the configs matching ``pattern`` at ``moment``: 'config'
    (called with the config), 'built' (config, model) or 'stepped' (config, model, step)."""
    def register(fn):
        CHECKS.append((pattern, moment, fn))
        return fn
    return register


def run_checks(path, moment, *args):
    for pattern, when, fn in CHECKS:
        if when == moment and fits(path, pattern):
            fn(*args)


def _logit_config(cfg):
    assert cfg.default_scope == 'mmkd' and cfg.model.teacher_ckpt  # one obvious line


def _distillation_terms_logged(cfg, model, step):
    distill = [k for k in step.log if k.startswith('loss_') and k != 'loss_cls']
    assert distill and all(torch.isfinite(step.log[k]) for k in step.log)


for _method in LOGIT_METHODS:  # their ImageNet configs
    check(f'configs/{_method}/*_in1k.py', 'config')(_logit_config)
    check(f'configs/{_method}/*_in1k.py', 'stepped')(_distillation_terms_logged)


@check('configs/vitkd/*', 'built')
def _vitkd_built(cfg, model):
    loss = model.distill_losses['loss_vitkd']
    assert (loss.s_extra_tokens, loss.t_extra_tokens, loss.grid) == (1, 1, (14, 14))
    assert not hasattr(model.student.backbone, 'dist_token')
    assert type(model.teacher.backbone).__name__ == 'DeiT3'
    if 'loss_nkd' in cfg.model.distill_losses:
        assert model.distill_losses['loss_nkd'].gamma == 1.0


@check('configs/vitkd/*', 'stepped')
def _vitkd_stepped(cfg, model, step):
    nkd = 'loss_nkd' in cfg.model.distill_losses
    expected = {'loss', 'loss_cls', 'loss_vitkd'} | ({'loss_nkd'} if nkd else set())
    assert expected <= set(step.log) and (nkd or 'loss_nkd' not in step.log)
    assert all(torch.isfinite(step.log[k]) for k in expected)


@check('configs/cskd/deit-*_in1k.py', 'config')
def _cskd_config(cfg):
    assert cfg.default_scope == 'mmkd'
    assert cfg.model.teacher_ckpt == 'checkpoints/regnety_160_mmpretrain.pth'
    assert cfg.train_dataloader.batch_size * 8 == 1024 and cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(5e-4 * 1024 / 512)
    assert cfg.train_cfg.max_epochs == 300
    assert [m.type for m in cfg.val_evaluator] == ['Accuracy', 'PredFieldMetric']
    assert cfg.custom_hooks[0].schedules[0] == dict(
        loss='loss_cskd', attr='ckf_ratio', type='linear', start_value=1.0, end_value=0.0,
        by_epoch=True)


@check('configs/cskd/deit-*_in1k.py', 'built')
def _cskd_built(cfg, model):
    assert model.teacher.backbone.timm_model is not None  # timm's regnety_160, built offline
    assert model.distill_losses['loss_cskd'].t_fc is model.teacher.head.fc


@check('configs/cskd/deit-*_in1k.py', 'stepped')
def _cskd_stepped(cfg, model, step):
    assert all(torch.isfinite(step.log[k]) for k in ('loss_cls', 'loss_deit', 'loss_cskd'))
    width = model.student.backbone.embed_dims
    assert step.seen['loss_cskd']['s_tokens'].shape == (1, 2 + 196, width)  # 14x14 patches ...
    assert last_tensor(step.seen['loss_cskd']['t_feat']).shape == (1, 3024, 7, 7)  # ... pooled 2x2


@check('configs/cakd/*_in1k*', 'stepped')
def _cakd_stepped(cfg, model, step):
    log = step.log
    assert {'loss', 'loss_cls', 'loss_cakd', 'loss_mad', 'cakd.mvg'} <= set(log)
    # the discriminator's loss is logged, not added to the student's total
    assert log['loss'].item() == pytest.approx(log['loss_cls'].item() + log['loss_cakd'].item(),
                                               rel=1e-5)
    assert all(torch.isfinite(v) for v in log.values())
    assert any(n.startswith('discriminators.loss_cakd.') for n in step.changed)


@check('configs/tat/resnet18_*', 'config')
def _tat_cls_config(cfg):
    assert cfg.model.student.init_cfg.type == 'Pretrained'


@check('configs/tat/resnet18_*', 'built')
def _tat_cls_built(cfg, model):
    tat = model.distill_losses['loss_tat']
    assert tat.loss_weight == (0.2 if 'kd' not in osp.basename(cfg.filename) else 0.1)
    assert isinstance(tat.k_proj, torch.nn.Identity) and tat.q_proj[0].kernel_size == (3, 3)


@check('configs/tat/resnet18_*', 'stepped')
def _tat_cls_stepped(cfg, model, step):
    assert {'loss', 'loss_cls', 'loss_tat'} <= set(step.log) and torch.isfinite(step.log['loss'])
    assert 'distill_losses.loss_tat.q_proj.0.weight' in step.changed  # the projections learn
    assert all(p.grad is None for p in model.teacher.parameters())


SEG_PAPER = {  # config -> (student tap channels, patches, heads, alpha, beta, gamma)
    'deeplabv3plus_r18_r101-d8_4xb4-40k_voc12aug-512x512.py': (128, 16, 64, 0.1, 1.0, 0.4),
    'deeplabv3plus_mobilenet-v2_r101-d8_4xb4-40k_voc12aug-512x512.py': (512, 16, 64, 0.1, 1.0, 0.4),
    'deeplabv3plus_r18_r101-d8_4xb4-40k_coco-stuff10k-512x512.py': (128, 32, 512, 0.6, 1.0, 1.0),
    'deeplabv3plus_mobilenet-v2_r101-d8_4xb4-40k_coco-stuff10k-512x512.py':
        (512, 32, 512, 0.6, 1.0, 1.0),
}
T_SEG = 512  # channels of the teacher's decoder feature (mmseg's R101 DeepLabV3+ head)
#: the one TaT-seg config whose whole distiller is built too (two more ResNet-101-size builds)
SEG_WHOLE = 'configs/tat/deeplabv3plus_r18_r101-d8_4xb4-40k_voc12aug-512x512.py'


@check('configs/tat/deeplabv3plus_*', 'config')
def _tat_seg_config(cfg):
    cs, n, heads, alpha, beta, gamma = SEG_PAPER[osp.basename(cfg.filename)]
    assert cfg.default_scope == 'mmseg' and cfg.model._scope_ == 'mmkd'
    loss_cfg = cfg.model.distill_losses.loss_tat
    assert (loss_cfg.s_channels, loss_cfg.patches, loss_cfg.heads, loss_cfg.alpha,
            loss_cfg.beta, loss_cfg.gamma) == (cs, (n, n), heads, alpha, beta, gamma)


@functools.lru_cache(maxsize=2)  # the VOC and the COCO-Stuff teacher, each built once
def _seg_teacher(spec):
    return build_model(spec, 'teacher', scope='mmseg').eval()


def _tat_seg_parts(cfg):
    """The paper config's student and teacher give decoder taps of the expected channels at
    1/4 resolution (one forward at 64x64), and its loss runs on random features of the shapes
    a 512x512 crop gives (128x128 maps)."""
    cs = SEG_PAPER[osp.basename(cfg.filename)][0]
    student = build_model(cfg.model.student, 'student', scope='mmseg').eval()
    teacher = _seg_teacher(cfg.model.teacher)
    taps = {}
    s_mod = dict(student.named_modules())[cfg.model.student_taps.feat]
    t_mod = dict(teacher.named_modules())[cfg.model.teacher_taps.feat]
    h1 = s_mod.register_forward_hook(lambda m, a, o: taps.__setitem__('s', o))
    h2 = t_mod.register_forward_hook(lambda m, a, o: taps.__setitem__('t', o))
    with torch.no_grad():
        student(torch.randn(1, 3, 64, 64), mode='tensor')
        teacher(torch.randn(1, 3, 64, 64), mode='tensor')
    h1.remove(), h2.remove()
    assert taps['s'].shape == (1, cs, 16, 16) and taps['t'].shape == (1, T_SEG, 16, 16)
    num_classes = 21 if 'voc' in cfg.filename else 171
    assert student.decode_head.num_classes == num_classes

    loss = MODELS.build(cfg.model.distill_losses.loss_tat)
    s = torch.randn(1, cs, 128, 128, requires_grad=True)
    t = torch.randn(1, T_SEG, 128, 128)
    loss.name = 'loss_tat'
    loss.check_inputs(s, t)
    value = loss(s, t)
    value.backward()
    assert torch.isfinite(value) and s.grad.abs().sum() > 0


@check(SEG_WHOLE, 'built')
def _tat_seg_whole_distiller(cfg, model):
    assert type(model).__name__ == 'SegmentationDistiller'
    assert model.data_preprocessor.size == (512, 512)
    assert not any(k.startswith('teacher') for k in model.state_dict())


@check('configs/downstream/*.py', 'config')
def _downstream_config(cfg):
    assert cfg.model.backbone.init_cfg.type == 'StrictPretrained'
    assert cfg.model.backbone.init_cfg.checkpoint == cfg.backbone_ckpt
    task = 'det' if osp.basename(cfg.filename).startswith('mask-rcnn') else 'seg'
    assert cfg.default_scope == dict(det='mmdet', seg='mmseg')[task]


# -- building -------------------------------------------------------------------------------
def _is_distiller(model_cfg):
    return 'student' in model_cfg


def build(path, cfg):
    """The config's model as a runner would build it (its data preprocessor, in its default
    scope), with a random teacher and no pretrained weights to load."""
    m = copy.deepcopy(cfg.model)
    scope = cfg.default_scope
    if _is_distiller(m):
        m.teacher_ckpt = None
        if isinstance(m.student, dict) and m.student.get('init_cfg'):
            m.student.init_cfg = None  # TaT's student starts from a pretrained checkpoint
        if _match(path, BUILD_ONLY) and isinstance(m.teacher, str):
            # no download of ImageNet weights for a random teacher
            m.teacher = ConfigDict(model_config(m.teacher, 'teacher'))
            m.teacher.pretrained = None
    if 'data_preprocessor' not in m and cfg.get('data_preprocessor'):
        m.data_preprocessor = copy.deepcopy(cfg.data_preprocessor)  # as Runner does
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        if scope != 'mmkd':
            init_default_scope(scope)  # mmdet's / mmseg's modules register on first use
        torch.manual_seed(0)
        if _is_distiller(m) and m.get('teacher') is not None:
            with pytest.warns(UserWarning, match='RANDOM'):
                return registry.build(m)
        return registry.build(m)


# -- stepping -------------------------------------------------------------------------------
def record_gradients(model, optim_wrapper, batch):
    """One real train step; ``(log, {optimizer wrapper name: names of the parameters whose
    gradient was accumulated in its backward})``: the grad-accumulator hooks that DDP's reducer
    counts."""
    fired, seen = {}, set()
    handles = [p.register_post_accumulate_grad_hook(lambda p, n=n: seen.add(n))
               for n, p in model.named_parameters() if p.requires_grad]
    wrappers = (dict(optim_wrapper.items()) if isinstance(optim_wrapper, OptimWrapperDict)
                else dict(student=optim_wrapper))
    for name, wrapper in wrappers.items():
        def backward(loss, _orig=wrapper.backward, _name=name, **kwargs):
            seen.clear()
            _orig(loss, **kwargs)
            fired[_name] = set(seen)
        wrapper.backward = backward
    try:
        model.train()
        log = model.train_step(batch, optim_wrapper)
    finally:
        for h in handles:
            h.remove()
    return log, fired


def step_classifier(path, cfg, model):
    """One train step of a classifier or classification distiller with the config's optimizer
    wrapper, recording each distillation loss's inputs and what changed."""
    head = (model.student if hasattr(model, 'student') else model).head
    pre = model.data_preprocessor
    channels = pre.mean.numel() if getattr(pre, '_enable_normalize', False) else 3
    size = _match(path, FULL_SIZE) or (28 if channels == 1 else 64)
    batch = random_batch(n=_match(path, BATCH) or 2, size=size, channels=channels,
                         num_classes=head.num_classes)
    if getattr(model, 'logit_cache', False):  # the teacher's logits come with the data
        g = torch.Generator().manual_seed(1)
        for s in batch['data_samples']:
            s.set_field(torch.randn(head.num_classes, generator=g), 'teacher_logits')
    if type(pre).__name__ == 'SeededClsDataPreprocessor':  # one mixing group, as
        for s in batch['data_samples']:                     # GlobalBatchSampler's items carry
            s.set_metainfo(dict(mix_seed=7))
    seen = {}
    for name, loss in getattr(model, 'distill_losses', {}).items():
        loss.register_forward_pre_hook(
            lambda m, args, kwargs, name=name: seen.__setitem__(name, kwargs), with_kwargs=True)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log, fired = record_gradients(model, optim_wrapper, batch)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    return SimpleNamespace(log=log, fired=fired, seen=seen, changed=changed)


def check_every_parameter_gets_a_gradient(path, model, fired):
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith('teacher.') for n in trainable)
    if not hasattr(model, 'discriminators'):
        assert set(fired) == {'student'}
        unused = _match(path, UNUSED)
        missed = sorted(trainable - fired['student'])
        if unused:  # exactly the known ones
            assert missed and all(n.startswith(unused) for n in missed), missed
            assert not [n for n in fired['student'] if n.startswith(unused)]
            return
        assert missed == []
        return
    # Cross-Architecture KD: the first iteration updates the student, then the discriminator;
    # CrossArchDDP syncs each update with its own reducer, over exactly these parameters
    d_ids = {id(p) for p in model.discriminators.parameters()}
    disc = {n for n, p in model.named_parameters() if id(p) in d_ids}
    assert disc and set(fired) == {'student', 'discriminator'}
    assert sorted((trainable - disc) ^ fired['student']) == []
    assert sorted(disc ^ fired['discriminator']) == []


def _det_batch(size, num_classes=80):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                        batch_input_shape=(size, size)))
        boxes = torch.tensor([[10., 20., 70., 100.], [40., 30., 120., 110.]])
        masks = np.zeros((2, size, size), np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        s.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([1, 5]),
                                      masks=BitmapMasks(masks, size, size))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
                        for _ in range(2)], data_samples=samples)


def _seg_batch(size):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, size, size), generator=g))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
                        for _ in range(2)], data_samples=samples)


def build_and_step_downstream(cfg):
    """A COCO / ADE20K recipe: the loss of one batch at DOWNSTREAM_STEP_SIZE, backward into the
    backbone. Built here rather than by :func:`build`: the input size its preprocessor pads or
    crops to (LSJ's 1024 px, ADE20K's 512 px) shrinks with the step."""
    from mmengine.model import revert_sync_batchnorm
    size = DOWNSTREAM_STEP_SIZE
    cfg.model.backbone.init_cfg = None  # no exported student here: random weights
    scope = cfg.default_scope
    with DefaultScope.overwrite_default_scope(scope):
        init_default_scope(scope)
        if scope == 'mmdet':
            from mmdet.registry import MODELS as registry
            augments = cfg.model.data_preprocessor.get('batch_augments')
            if augments:  # the LSJ configs pad every batch to 1024 x 1024
                augments[0].size = (size, size)
            batch = _det_batch(size)
        else:
            from mmseg.registry import MODELS as registry
            cfg.model.data_preprocessor.size = (size, size)  # 512 x 512 crops
            batch = _seg_batch(size)
        torch.manual_seed(0)
        model = revert_sync_batchnorm(registry.build(cfg.model))  # SyncBN needs a process group
        model.init_weights()
        model.train()
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        assert torch.isfinite(loss), losses
        loss.backward()
        grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


# -- the tests ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _parsed(path):
    return Config.fromfile(osp.join(ROOT, path))


def read(path):
    """The config, parsed once for both tests (an mmseg/mmdet config takes up to 1 s)."""
    return copy.deepcopy(_parsed(path))


def test_every_logit_method_has_an_imagenet_config():
    imagenet = {p.split('/')[1] for p in CONFIGS
                if p.split('/')[1] in LOGIT_METHODS and 'fmnist' not in p}
    assert imagenet == set(LOGIT_METHODS)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p[len('configs/'):])
def test_config_reads(path):
    cfg = read(path)
    assert cfg.default_scope in ('mmkd', 'mmdet', 'mmseg'), cfg.default_scope
    if _is_distiller(cfg.model) and not cfg.model.get('logit_cache'):
        assert cfg.model.teacher_ckpt  # the teacher checkpoint is one obvious line
    run_checks(path, 'config', cfg)


@pytest.mark.parametrize('path', _params())
def test_config_builds_and_steps(path):
    cfg = read(path)
    if fits(path, 'configs/downstream/*.py'):
        return build_and_step_downstream(cfg)
    if fits(path, 'configs/tat/deeplabv3plus_*'):
        _tat_seg_parts(cfg)
        if path != SEG_WHOLE:
            return
    model = build(path, cfg)
    run_checks(path, 'built', cfg, model)
    if _match(path, BUILD_ONLY):
        return
    step = step_classifier(path, cfg, model)
    assert all(torch.isfinite(v) for v in step.log.values()), step.log
    for name in getattr(model, 'distill_losses', {}):
        assert name in step.log, (name, sorted(step.log))
    check_every_parameter_gets_a_gradient(path, model, step.fired)
    run_checks(path, 'stepped', cfg, model, step)
