"""TaT (target-aware transformer): loss values against an independent float64 NumPy computation,
patch-group / anchor-point forms, memory, the segmentation distiller end to end (the paper
configs' checks, builds and steps: test_configs.py)."""
import copy
import math
import os.path as osp
import weakref

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import mmkd  # noqa: F401
from mmkd.models.builder import build_model
from mmkd.models.losses.tat import TaTLoss, TaTSegLoss, group_patches, one_to_all
from mmkd.registry import MODELS
from reference import conv2d
from tools_helpers import run_tool, scalars, PY

torch.set_num_threads(1)  # shared 2-core machine: tiny models, one thread each


# -- independent reference (NumPy float64, explicit loops over positions / patches) ----------
def np_conv_bn(x, conv_w, bn_w, bn_b, eps):
    """Conv (k x k, stride 1, 'same' zero padding, no bias) then train-mode BatchNorm."""
    y = conv2d(x, conv_w)
    mean = y.mean(axis=(0, 2, 3), keepdims=True)
    var = y.var(axis=(0, 2, 3), keepdims=True)  # biased, as BN normalises with
    return (y - mean) / np.sqrt(var + eps) * bn_w[None, :, None, None] + bn_b[None, :, None, None]


def np_proj(seq, x):
    conv, bn = seq[0], seq[1]
    return np_conv_bn(x, conv.weight.detach().numpy(), bn.weight.detach().numpy(),
                      bn.bias.detach().numpy(), bn.eps)


def np_one_to_all(q, k, v):
    """q, k: (C, P), v: (Cv, P) for one sample -> (Cv, P): position by position."""
    out = np.zeros_like(v)
    for i in range(q.shape[1]):
        s = np.array([q[:, i] @ k[:, j] for j in range(k.shape[1])])
        a = np.exp(s - s.max())
        a /= a.sum()
        out[:, i] = (v * a[None]).sum(axis=1)
    return out


def np_patches(x, n, m):
    """(C, H, W) -> list of n*m patches (C, H/n * W/m), row-major."""
    C, H, W = x.shape
    ph, pw = H // n, W // m
    return [x[:, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw].reshape(C, -1)
            for i in range(n) for j in range(m)]


def np_patch_group_mse(q, k, v, t, n, m, heads):
    """Sum over the batch of each sample's mean squared error of one-to-all inside groups of g
    patches stacked along channels (patch p -> group p // g)."""
    total = 0.0
    g = n * m // heads
    for b in range(q.shape[0]):
        pq, pk, pv, pt = (np_patches(x[b], n, m) for x in (q, k, v, t))
        sse, count = 0.0, 0
        for h in range(heads):
            sel = range(h * g, (h + 1) * g)
            gq, gk, gv, gt = (np.concatenate([p[s] for s in sel]) for p in (pq, pk, pv, pt))
            err = (np_one_to_all(gq, gk, gv) - gt) ** 2
            sse, count = sse + err.sum(), count + err.size
        total += sse / count
    return total


def np_avg_pool(x, a_h, a_w):
    B, C, H, W = x.shape
    kh, kw = H // a_h, W // a_w
    out = np.zeros((B, C, a_h, a_w))
    for i in range(a_h):
        for j in range(a_w):
            out[:, :, i, j] = x[:, :, i * kh:(i + 1) * kh, j * kw:(j + 1) * kw].mean(axis=(2, 3))
    return out


def np_anchor_mse(q, k, v, t, a_h, a_w):
    """Sum over the batch of each sample's mean squared error at the anchor points."""
    qa, ka, va, ta = (np_avg_pool(x, a_h, a_w) for x in (q, k, v, t))
    return sum(((np_one_to_all(qa[b].reshape(qa.shape[1], -1), ka[b].reshape(ka.shape[1], -1),
                               va[b].reshape(va.shape[1], -1))
                 - ta[b].reshape(ta.shape[1], -1)) ** 2).mean() for b in range(q.shape[0]))


def randomise_bn(loss, seed=0):
    """Non-trivial BN affine parameters, so that they take part in the comparison."""
    g = torch.Generator().manual_seed(seed)
    for mod in loss.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.data = 0.5 + torch.rand(mod.weight.shape, generator=g, dtype=mod.weight.dtype)
            mod.bias.data = 0.1 * torch.randn(mod.bias.shape, generator=g, dtype=mod.bias.dtype)


def feats(B, cs, ct, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, cs, H, W, generator=g, dtype=torch.float64),
            torch.randn(B, ct, H, W, generator=g, dtype=torch.float64))


def close(a, b, tol=1e-5):
    a, b = (x.detach() if isinstance(x, torch.Tensor) else x for x in (a, b))
    assert abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b))), (float(a), float(b))


# -- loss values ------------------------------------------------------------------------------
@pytest.mark.parametrize('proj_kernel,key_proj', [(3, False), (1, True)])
def test_one_to_all_value(proj_kernel, key_proj):
    torch.manual_seed(0)
    loss = TaTLoss(s_channels=3, t_channels=4, proj_kernel=proj_kernel, key_proj=key_proj).double()
    randomise_bn(loss)
    s, t = feats(2, 3, 4, 3, 4)
    value = loss(s, t)
    sn, tn = s.numpy(), t.numpy()
    q, v = np_proj(loss.q_proj, sn), np_proj(loss.v_proj, sn)
    k = np_proj(loss.k_proj, tn) if key_proj else tn
    B, C = tn.shape[:2]
    sse = sum(((np_one_to_all(q[b].reshape(C, -1), k[b].reshape(C, -1), v[b].reshape(C, -1))
                - tn[b].reshape(C, -1)) ** 2).sum() for b in range(B))
    close(value, sse / tn.size)  # MSE, mean over every element


def test_patch_group_and_anchor_values():
    torch.manual_seed(0)
    n, m, heads, anchors = 2, 4, 4, (2, 2)  # 8 patches of 2x1, 2 per group; 2x2 anchor grid
    kw = dict(patches=(n, m), heads=heads, anchors=anchors)
    full = TaTSegLoss(3, 5, alpha=0.7, beta=1.3, gamma=0.4, **kw).double()
    randomise_bn(full)
    s, t = feats(2, 3, 5, 4, 4, seed=1)
    value = full(s, t)
    sn, tn = s.numpy(), t.numpy()
    q, k, v = np_proj(full.q_proj, sn), np_proj(full.k_proj, tn), np_proj(full.v_proj, sn)
    B = tn.shape[0]
    l_pg = np_patch_group_mse(q, k, v, tn, n, m, heads) / B
    l_an = np_anchor_mse(q, k, v, tn, *anchors) / B
    close(full.log_vars['pg'], l_pg)
    close(full.log_vars['anchor'], l_an)
    close(value, 0.7 * (1.3 * l_pg + 0.4 * l_an))

    # a zero coefficient drops its term entirely (not computed)
    pg_only = TaTSegLoss(3, 5, alpha=1.0, beta=1.0, gamma=0.0, **kw).double()
    pg_only.load_state_dict(full.state_dict())
    close(pg_only(s, t), l_pg)
    assert set(pg_only.log_vars) == {'pg'}


def test_seg_value_independent_of_map_size():
    """Per-sample means: the same maps at twice the size (each element repeated 2x2, so every
    error is repeated too; same patch and anchor grids) give the same value, where a sum over
    elements would be 4x larger."""
    torch.manual_seed(0)
    loss = TaTSegLoss(8, 8, patches=(4, 4), heads=4, anchors=(4, 4), alpha=1.0, beta=1.0,
                      gamma=1.0).double()
    s, t = feats(4, 8, 8, 16, 16, seed=3)
    values = []
    for scale in (1, 2):
        big = [torch.repeat_interleave(torch.repeat_interleave(x, scale, 2), scale, 3)
               for x in (s, t)]
        total = float(loss(*big))
        values.append((total, {k: float(v) for k, v in loss.log_vars.items()}))
    assert values[1][0] == pytest.approx(values[0][0], rel=1e-6)
    for term in ('pg', 'anchor'):
        assert values[1][1][term] == pytest.approx(values[0][1][term], rel=1e-6), values
        assert values[0][1][term] > 0.01


def test_seg_term_at_the_voc_tap_is_on_the_scale_of_the_segmentation_ce():
    """At the VOC config's real tap shapes (student 128 and teacher 512 channels, 128x128 at a
    512 crop) and the paper's alpha=0.1, beta=1, gamma=0.4, the TaT term of unit-variance
    features is within 100x below and 10x above the CE of a 21-class segmentor at its first
    step (ln 21 = 3.04); the old sum over elements made it ~1e6 times the CE."""
    torch.manual_seed(0)
    loss = TaTSegLoss(128, 512, patches=(16, 16), heads=64, anchors=(32, 32), alpha=0.1,
                      beta=1.0, gamma=0.4)
    with torch.no_grad():
        value = float(loss(torch.randn(2, 128, 128, 128), torch.randn(2, 512, 128, 128)))
    ce = math.log(21)
    assert ce / 100 < value < 10 * ce, (value, ce)


def test_group_patches_layout():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    grouped = group_patches(x, 2, 3, heads=2)  # 6 patches of 2x2, 3 per group
    assert grouped.shape == (4, 9, 2, 2)
    for b in range(2):
        for p in range(6):
            i, j = divmod(p, 3)
            h, r = divmod(p, 3)
            patch = x[b, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
            assert torch.equal(grouped[b * 2 + h, 3 * r:3 * r + 3], patch)


def test_one_patch_per_group_equals_one_to_all_on_each_patch():
    torch.manual_seed(0)
    n = m = 4
    loss = TaTSegLoss(6, 8, patches=(n, m), heads=n * m, anchors=None, alpha=1.0, beta=1.0,
                      gamma=0.0).double()
    randomise_bn(loss)
    s, t = feats(2, 6, 8, 8, 12, seed=2)
    value = loss(s, t)
    q, k, v = loss.project(s, t)
    ph, pw = 8 // n, 12 // m
    total = 0.0
    for i in range(n):
        for j in range(m):
            win = (slice(None), slice(None), slice(i * ph, (i + 1) * ph), slice(j * pw, (j + 1) * pw))
            total = total + (one_to_all(q[win], k[win], v[win]) - t[win]).pow(2).sum()
    close(value, total / t.numel())  # per-sample means of equal-sized samples: the mean


def test_gradients_reach_projections_and_student_only():
    torch.manual_seed(0)
    loss = TaTSegLoss(4, 6, patches=(2, 2), heads=2, anchors=(2, 2))
    s = torch.randn(2, 4, 4, 4, requires_grad=True)
    t = torch.randn(2, 6, 4, 4)  # a teacher feature comes from a no_grad forward
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    for name, p in loss.named_parameters():  # q, v and the key projection on the teacher map
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_check_inputs_errors():
    loss = TaTSegLoss(4, 6, patches=(4, 4), heads=4, anchors=(2, 2))
    loss.name = 'loss_tat'
    loss.check_inputs(torch.zeros(1, 4, 8, 8), torch.zeros(1, 6, 8, 8))
    with pytest.raises(ValueError, match='equal patches'):
        loss.check_inputs(torch.zeros(1, 4, 6, 8), torch.zeros(1, 6, 6, 8))
    with pytest.raises(ValueError, match='teacher channels'):
        loss.check_inputs(torch.zeros(1, 4, 8, 8), torch.zeros(1, 5, 8, 8))
    with pytest.raises(ValueError, match='must divide'):
        TaTSegLoss(4, 6, patches=(4, 4), heads=5)


# -- memory -----------------------------------------------------------------------------------
class AllocationMeter(TorchDispatchMode):
    """Sizes of the tensors the ops allocate (every op output that is neither a view nor one of
    its inputs), on the meta device.

    Why this measure: tracemalloc does not see torch's allocator and RSS on a shared machine is
    noisy; meta tensors allocate nothing, so the one-to-all map of a 128x128 grid (16384^2 scores)
    costs no memory to measure, and the numbers are exact and deterministic. ``peak`` counts the
    bytes alive at once (freed when the tensor object dies, weakref), ``largest`` the biggest
    single tensor: for attention, the (groups, P, P) score/probability tensors."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = self.largest = 0

    def _free(self, nbytes):
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, 'is_view', False):
            inputs = {id(a) for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
            for o in tree_leaves(out):
                if isinstance(o, torch.Tensor) and id(o) not in inputs:
                    nbytes = o.numel() * o.element_size()
                    self.live += nbytes
                    self.largest = max(self.largest, nbytes)
                    weakref.finalize(o, self._free, nbytes)
        self.peak = max(self.peak, self.live)
        return out


def measure(loss, C=8, size=128):
    loss = loss.to('meta')
    s = torch.empty(1, C, size, size, device='meta', requires_grad=True)
    t = torch.empty(1, C, size, size, device='meta')
    with AllocationMeter() as meter:
        value = loss(s, t)  # autograd keeps what backward needs alive: part of the peak
    del value
    return meter


def test_patch_group_memory_far_below_one_to_all_on_128x128():
    one = measure(TaTLoss(8, 8, proj_kernel=1, key_proj=True))
    pg = measure(TaTSegLoss(8, 8, patches=(16, 16), heads=64, anchors=None, gamma=0.0))
    both = measure(TaTSegLoss(8, 8, patches=(16, 16), heads=64, anchors=(32, 32)))
    assert one.largest == 16384 ** 2 * 4  # one (1, hw, hw) float32 score map: 1 GiB
    # patch-group: 64 groups of 4 patches of 8x8 positions: (64, 64, 64) scores, 1 MiB
    assert pg.largest == 64 * 64 * 64 * 4
    assert one.peak / pg.peak > 100, (one.peak, pg.peak)
    # + anchor points on a 32x32 grid: a (1, 1024, 1024) map
    assert one.peak / both.peak > 50, (one.peak, both.peak)


# -- segmentation distiller -------------------------------------------------------------------
def tiny_segmentor(base, num_classes=4):
    """A tiny DeepLabV3+ (ResNetV1c-18 of width ``base``, output stride 8)."""
    bn = dict(type='BN', requires_grad=True)
    return ConfigDict(
        type='EncoderDecoder',
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=base, base_channels=base,
                      num_stages=4, out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                      strides=(1, 2, 1, 1), contract_dilation=True, norm_cfg=bn),
        decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=base * 8, in_index=3,
                         channels=16, dilations=(1, 2, 3, 4), c1_in_channels=base, c1_channels=8,
                         dropout_ratio=0.1, num_classes=num_classes, norm_cfg=bn,
                         align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                          loss_weight=1.0)),
        auxiliary_head=dict(type='FCNHead', in_channels=base * 4, in_index=2, channels=8,
                            num_convs=1, concat_input=False, dropout_ratio=0.1,
                            num_classes=num_classes, norm_cfg=bn, align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                             loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


#: the tiny segmentors' preprocessor (ImageNet statistics, 64 px), not conftest's classifier PRE
SEG_PRE = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
               pad_val=0, seg_pad_val=255, size=(64, 64))
# 64x64 images -> 8x8 last-stage maps: 4x4 patches of 2x2, 2 per group; 4x4 anchors
TAT = dict(type='TaTSegLoss', s_channels=64, t_channels=128, patches=(4, 4), heads=8,
           anchors=(4, 4), alpha=0.1, beta=1.0, gamma=0.4)


def distiller_cfg(teacher_ckpt, **kwargs):
    cfg = dict(_scope_='mmkd', type='SegmentationDistiller', student=tiny_segmentor(8),
               teacher=tiny_segmentor(16), teacher_ckpt=teacher_ckpt, data_preprocessor=SEG_PRE,
               student_taps=dict(feat='backbone.layer4'), teacher_taps=dict(feat='backbone.layer4'),
               distill_losses=dict(loss_tat=TAT))
    cfg.update(kwargs)
    return cfg


@pytest.fixture(scope='module')
def seg_teacher_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    teacher = build_model(tiny_segmentor(16), 'teacher', scope='mmseg')
    teacher.init_weights()
    path = str(tmp_path_factory.mktemp('seg_teacher') / 'teacher.pth')
    torch.save(dict(meta=dict(), state_dict=teacher.state_dict()), path)
    return path


def seg_batch(n=2, size=64, num_classes=4, seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        s = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, num_classes, (1, size, size), generator=g)))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
                        for _ in range(n)], data_samples=samples)


def test_segmentation_distiller_frozen_teacher_and_gradients(seg_teacher_ckpt):
    # a second loss on the decode heads' logits makes the teacher run its decode head too
    logits = dict(type='FitNetLoss', s_channels=4, t_channels=4,
                  inputs=dict(s_feat='student.logits', t_feat='teacher.logits'))
    model = MODELS.build(distiller_cfg(seg_teacher_ckpt,
                                       distill_losses=dict(loss_tat=TAT, loss_logits=logits)))
    assert type(model.data_preprocessor).__name__ == 'SegDataPreProcessor'
    assert model._teacher_head_needed
    assert not any(k.startswith('teacher') for k in model.state_dict())
    t_before = copy.deepcopy(model.teacher.state_dict())
    model.train()
    data = model.data_preprocessor(seg_batch(), True)
    losses = model(**data, mode='loss')
    assert {'decode.loss_ce', 'aux.loss_ce', 'loss_tat', 'loss_logits', 'tat.pg',
            'tat.anchor'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()  # grads kept (no zero_grad)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not any(m.training for m in model.teacher.modules())
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, t_before[k]), k
    tat = model.distill_losses['loss_tat']
    for name, p in tat.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.student.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0

    # without a logits loss the teacher's decode head is not run
    plain = MODELS.build(distiller_cfg(seg_teacher_ckpt))
    assert not plain._teacher_head_needed
    model.eval()
    out = model.val_step(seg_batch(n=1, seed=1))
    assert out[0].pred_sem_seg.data.shape == (1, 64, 64)


def write_seg_set(root, n_train=8, n_val=4, size=64, num_classes=4, seed=0):
    """Images whose colour tells the class of each of 4 random rectangles (learnable), with
    label PNGs, in a layout ``BaseSegDataset`` reads (img_dir/<split>, ann_dir/<split>)."""
    import mmcv
    rng = np.random.RandomState(seed)
    colours = rng.randint(0, 256, (num_classes, 3))
    for split, count in (('train', n_train), ('val', n_val)):
        for i in range(count):
            label = np.zeros((size, size), np.uint8)
            for c in range(1, num_classes):
                y, x = rng.randint(0, size - 16, 2)
                h, w = rng.randint(12, 32, 2)
                label[y:y + h, x:x + w] = c
            img = colours[label] + rng.randint(-20, 21, (size, size, 3))
            mmcv.imwrite(np.clip(img, 0, 255).astype(np.uint8),
                         osp.join(root, 'img_dir', split, f'{i}.png'))
            mmcv.imwrite(label, osp.join(root, 'ann_dir', split, f'{i}.png'))


@pytest.mark.slow
def test_segmentation_distiller_trains_with_tools_train(tmp_path, seg_teacher_ckpt):
    data_root = str(tmp_path / 'data')
    write_seg_set(data_root)
    classes = ('background', 'a', 'b', 'c')

    def dataset(split, pipeline):
        return dict(type='BaseSegDataset', data_root=data_root, img_suffix='.png',
                    seg_map_suffix='.png', metainfo=dict(classes=classes),
                    data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
                    pipeline=pipeline)
    load = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    train_pipe = load + [dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
    cfg = Config(dict(
        default_scope='mmseg',  # an mmseg config: mmseg's runtime, datasets and metrics
        custom_imports=dict(imports=['mmkd'], allow_failed_imports=False),
        model=distiller_cfg(seg_teacher_ckpt),
        train_dataloader=dict(batch_size=2, num_workers=0,
                              sampler=dict(type='InfiniteSampler', shuffle=True),
                              dataset=dataset('train', train_pipe)),
        val_dataloader=dict(batch_size=1, num_workers=0,
                            sampler=dict(type='DefaultSampler', shuffle=False),
                            dataset=dataset('val', load + [dict(type='PackSegInputs')])),
        val_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4),
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
        param_scheduler=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=4,
                              by_epoch=False)],
        default_hooks=dict(timer=dict(type='IterTimerHook'),
                           logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
                           param_scheduler=dict(type='ParamSchedulerHook'),
                           checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4),
                           sampler_seed=dict(type='DistSamplerSeedHook')),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
                     dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
    ))
    config = str(tmp_path / 'tat_tiny_seg.py')
    cfg.dump(config)
    work_dir = tmp_path / 'work'
    run_tool([PY, 'tools/train.py', config, '--work-dir', str(work_dir)])
    records = scalars(work_dir)
    train = [r for r in records if 'loss_tat' in r]
    assert len(train) == 4 and all(np.isfinite(r['loss_tat']) for r in train)
    assert {'decode.loss_ce', 'tat.pg', 'tat.anchor'} <= set(train[0])
    val = [r for r in records if 'mIoU' in r]
    assert val and 0 <= val[-1]['mIoU'] <= 100

    # the student exports alone, and loads strictly into its own segmentor
    from mmkd.apis.export import extract_student
    student_sd, backbone_sd = extract_student(str(work_dir / 'iter_4.pth'))
    assert not any('loss_tat' in k or k.startswith('teacher') for k in student_sd)
    student = build_model(tiny_segmentor(8), 'student', scope='mmseg')
    student.load_state_dict(student_sd, strict=True)
    student.backbone.load_state_dict(backbone_sd, strict=True)
