"""CSKD (CNN teacher -> ViT student): loss values against an independent computation, the CKF
schedule in a real runner, the single teacher forward, grid pooling, the inference ensemble, the
timm teacher converter and a short real run (the ImageNet configs' checks and step:
test_configs.py)."""
import copy
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import mmkd  # noqa: F401
from mmkd.evaluation.pred_field_metric import PredFieldMetric
from mmkd.models.heads.cskd_head import CSKDClsHead
from mmkd.models.heads.distill_token_head import DistillTokenClsHead
from mmkd.models.losses.cskd import last_tensor, pool_to_grid, student_grid
from mmkd.registry import HOOKS, MODELS
from conftest import FMNIST, PRE, ROOT, VIT, random_batch
from reference import log_softmax

pytestmark = pytest.mark.filterwarnings('ignore:teacher_ckpt=None')

FMNIST_CFG = 'configs/cskd/deit-small_resnet-small_1xb128_fmnist.py'


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these models are tiny (or run one step), and on a shared 2-core
    machine two spinning threads make each step several times slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_fmnist(**student_backbone):
    """The Fashion-MNIST CSKD distiller of the config, with a random teacher."""
    cfg = copy.deepcopy(Config.fromfile(FMNIST_CFG).model)
    cfg.update(teacher_ckpt=None, data_preprocessor=PRE)
    if student_backbone:
        student = Config.fromfile(cfg.student).model
        student.backbone.update(student_backbone)
        cfg.student = student
    torch.manual_seed(0)
    return MODELS.build(cfg)


def record_kwargs(module, store, key):
    """Record the keyword arguments ``module`` (a distillation loss) is called with."""
    return module.register_forward_pre_hook(
        lambda m, args, kwargs: store.__setitem__(key, kwargs), with_kwargs=True)


# -- the loss against an independent float64 computation ------------------------------------
def reference_cskd(tokens, feat, w_t, b_t, w_s, b_s, r, mode, T, extra=2):
    """CSKD written position by position: teacher fc at each cell, the f x f student patches of
    that cell averaged, CKF target, CE (mean over B*h*w) or KL * T^2 / B."""
    B, L, _ = tokens.shape
    h, w = feat.shape[2:]
    f = int(round(math.sqrt((L - extra) / (h * w))))
    W = f * w  # student grid width
    total = 0.0
    for b in range(B):
        t_dense = np.array([[w_t @ feat[b, :, i, j] + b_t for j in range(w)] for i in range(h)])
        t_global = t_dense.reshape(h * w, -1).mean(axis=0)
        for i in range(h):
            for j in range(w):
                s = np.zeros_like(b_s)
                for di in range(f):
                    for dj in range(f):
                        n = (i * f + di) * W + (j * f + dj)  # row-major patch index
                        s += w_s @ tokens[b, extra + n] + b_s
                s /= f * f
                target = r * t_dense[i, j] + (1 - r) * t_global
                if mode == 'hard':
                    total -= log_softmax(s)[np.argmax(target)]
                else:
                    log_p, log_q = log_softmax(target / T), log_softmax(s / T)
                    total += np.sum(np.exp(log_p) * (log_p - log_q)) * T * T
    return total / (B * h * w) if mode == 'hard' else total / B


@pytest.fixture(scope='module')
def double_model():
    return build_fmnist().double()


@pytest.mark.parametrize('mode,T', [('hard', 1.0), ('soft', 1.0), ('soft', 2.0)])
@pytest.mark.parametrize('epoch', [0, 150, 299])  # first, middle, last epoch of 300
@pytest.mark.parametrize('factor', [1, 2])         # 7x7 and 14x14 student grids, teacher 7x7
def test_loss_value_matches_reference(double_model, mode, T, epoch, factor):
    model = double_model
    model.zero_grad(set_to_none=True)
    loss = MODELS.build(dict(type='CSKDLoss', mode=mode, tau=T))
    loss.setup(model.student, model.teacher)
    loss.ckf_ratio = 1 - epoch / 300  # what DistillScheduleHook sets (linear, 1 -> 0)
    g = torch.Generator().manual_seed(epoch + factor)
    B, D, C, K = 3, 64, 64, 10
    tokens = torch.randn(B, 2 + 49 * factor ** 2, D, generator=g, dtype=torch.float64)
    tokens.requires_grad_()
    feat = torch.randn(B, C, 7, 7, generator=g, dtype=torch.float64)
    loss.check_inputs(s_tokens=tokens, t_feat=(feat, ))
    value = loss(s_tokens=tokens, t_feat=(feat, ))

    fc, head_dist = model.teacher.head.fc, model.student.head.layers.head_dist
    expected = reference_cskd(*[x.detach().numpy() for x in (
        tokens, feat, fc.weight, fc.bias, head_dist.weight, head_dist.bias)],
        r=loss.ckf_ratio, mode=mode, T=T)
    assert value.item() == pytest.approx(expected, abs=1e-5)
    value.backward()
    assert tokens.grad[:, 2:].abs().sum() > 0 and tokens.grad[:, :2].abs().sum() == 0
    assert head_dist.weight.grad.abs().sum() > 0


def test_ckf_ratio_extremes_are_dense_and_global_targets():
    model = build_fmnist()
    loss = model.distill_losses['loss_cskd']
    feat = torch.randn(2, 64, 7, 7)
    t_dense = loss.teacher_dense(feat)
    tokens = torch.randn(2, 51, 64)
    s_dense = loss.student_dense(tokens, (7, 7))
    loss.ckf_ratio = 1.0
    dense = F.cross_entropy(s_dense, t_dense.argmax(1))
    loss.ckf_ratio = 0.0
    glob = F.cross_entropy(s_dense, t_dense.mean((2, 3)).argmax(1)[:, None, None].expand(2, 7, 7))
    loss.ckf_ratio = 1.0
    torch.testing.assert_close(loss(tokens, feat), dense)
    loss.ckf_ratio = 0.0
    torch.testing.assert_close(loss(tokens, feat), glob)


# -- one step of the distiller ------------------------------------------------------------
def test_teacher_once_t_global_is_teacher_logits_and_gradients():
    model = build_fmnist().train()
    cskd, deit = model.distill_losses['loss_cskd'], model.distill_losses['loss_deit']
    calls, seen = [], {}
    model.teacher.register_forward_hook(lambda *a: calls.append(1))
    model.teacher.head.register_forward_hook(lambda m, a, o: seen.__setitem__('t_logits', o))
    record_kwargs(cskd, seen, 'cskd')
    record_kwargs(deit, seen, 'deit')
    data = model.data_preprocessor(random_batch(), True)
    losses = model(**data, mode='loss')
    assert len(calls) == 1, 'the teacher must run exactly once per step'
    assert set(losses) >= {'loss_cls', 'loss_deit', 'loss_cskd'}

    t_feat = last_tensor(seen['cskd']['t_feat'])
    assert t_feat.shape == (4, 64, 7, 7) and seen['cskd']['s_tokens'].shape == (4, 2 + 49, 64)
    t_global = cskd.teacher_dense(t_feat).mean((2, 3))
    torch.testing.assert_close(t_global, seen['t_logits'], rtol=1e-5, atol=1e-5)
    # DeiT's term uses teacher.logits, which *is* t_global: no separate pooling path to diverge
    torch.testing.assert_close(seen['deit']['t_logits'], t_global, rtol=1e-5, atol=1e-5)
    # the DeiT term's input is still the distillation token's logits, not a patch token's
    s_tokens = seen['cskd']['s_tokens']
    head = model.student.head
    torch.testing.assert_close(seen['deit']['s_logits'], head.layers.head_dist(s_tokens[:, 1]))

    losses['loss_cskd'].backward()
    student = model.student
    assert student.head.layers.head_dist.weight.grad.abs().sum() > 0
    assert student.backbone.patch_embed.projection.weight.grad.abs().sum() > 0
    assert student.backbone.layers[-1].ffn.layers[1].weight.grad.abs().sum() > 0
    assert student.head.layers.head.weight.grad is None  # CSKD trains the dist head only
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())
    assert not any(n.startswith('distill_losses') for n, _ in model.named_parameters())


def test_student_grid_factor_two_trains_and_non_dividing_grid_is_a_clear_error():
    model = build_fmnist(patch_size=2)  # 28 px / 2 = 14x14 tokens, teacher 7x7: pool 2x2
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW', lr=1e-3)))
    log = model.train_step(random_batch(), wrapper)
    assert torch.isfinite(log['loss_cskd'])

    model = build_fmnist(patch_size=3)  # ceil(28/3) = 10: 10x10 tokens, no integer ratio to 7x7
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW', lr=1e-3)))
    with pytest.raises(ValueError, match=r"CSKDLoss 'loss_cskd'.*100 patch tokens.*integer "
                                         r"multiple of the teacher grid 7x7.*'s_tokens' \(from "
                                         r"student\.tokens\) of shape \(4, 102, 64\).*'t_feat'"):
        model.train_step(random_batch(), wrapper)


# -- grid pooling ----------------------------------------------------------------------------
def test_pool_to_grid_and_student_grid():
    x = torch.randn(2, 3, 14, 14)
    y = pool_to_grid(x, (7, 7))  # CSKD's 2x2, stride 2
    assert y.shape == (2, 3, 7, 7)
    torch.testing.assert_close(y[..., 3, 5], x[..., 6:8, 10:12].mean((-2, -1)))
    x = torch.randn(2, 3, 12, 18)  # generic integer ratio 3
    y = pool_to_grid(x, (4, 6))
    torch.testing.assert_close(y[..., 1, 4], x[..., 3:6, 12:15].mean((-2, -1)))
    y = pool_to_grid(torch.randn(1, 2, 14, 21), (7, 7))  # different ratios per axis
    assert y.shape == (1, 2, 7, 7)
    x = torch.randn(1, 2, 7, 7)
    assert pool_to_grid(x, (7, 7)) is x
    with pytest.raises(ValueError, match=r'student grid 14x14 is not an integer multiple of the '
                                         r'teacher grid 4x4'):
        pool_to_grid(torch.randn(1, 1, 14, 14), (4, 4))

    assert student_grid(196, (7, 7)) == (14, 14)
    assert student_grid(49, (7, 7)) == (7, 7)
    assert student_grid(24 * 32, (6, 8)) == (24, 32)
    for n, grid in ((196, (5, 5)), (100, (4, 4)), (20, (7, 7))):
        with pytest.raises(ValueError, match='integer multiple of the teacher grid'):
            student_grid(n, grid)


# -- build-time checks ----------------------------------------------------------------------
def test_teacher_without_linear_on_pooled_features_is_rejected_at_build():
    cfg = copy.deepcopy(Config.fromfile(FMNIST_CFG).model)
    cfg.update(teacher_ckpt=None, data_preprocessor=PRE, teacher=VIT)  # ViT head on the cls token
    with pytest.raises(ValueError, match=r"CSKDLoss 'loss_cskd': the teacher's classifier must be "
                                         r'one linear layer on globally average-pooled features.*'
                                         r'neck NoneType and head VisionTransformerClsHead'):
        MODELS.build(cfg)
    cfg = copy.deepcopy(Config.fromfile(FMNIST_CFG).model)
    cfg.update(teacher_ckpt=None, data_preprocessor=PRE, student=VIT)
    with pytest.raises(ValueError, match='student needs a distillation-token head'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match="mode must be 'hard' or 'soft'"):
        MODELS.build(dict(type='CSKDLoss', mode='medium'))


# -- the head and the inference ensemble ----------------------------------------------------
def test_head_trains_like_distill_token_head():
    torch.manual_seed(0)
    plain = DistillTokenClsHead(num_classes=10, in_channels=16)
    cskd = CSKDClsHead(num_classes=10, in_channels=16)
    cskd.load_state_dict(plain.state_dict())
    tokens = torch.randn(3, 2 + 9, 16)
    pair = ((tokens[:, 0], tokens[:, 1]), )
    for mode in (True, False):
        plain.train(mode), cskd.train(mode)
        torch.testing.assert_close(cskd((tokens, )), plain(pair))
        torch.testing.assert_close(cskd(pair), plain(pair))  # out_type='cls_token' too


def test_ensemble_prediction_dist_tap_and_metric():
    model = build_fmnist().eval()
    head = model.student.head
    seen = {}
    model.student.backbone.register_forward_hook(lambda m, a, o: seen.__setitem__('raw', o[-1]))
    # the first call: the head's own, on the distillation token (the ensemble calls it again)
    def first_dist(module, args, out):
        seen.setdefault('dist', out)  # returns nothing: a hook's return value would replace out
    head.layers.head_dist.register_forward_hook(first_dist)
    data = model.data_preprocessor(random_batch(n=6), False)
    with torch.no_grad():
        samples = model(**data, mode='predict')
    tokens = seen['raw']  # (B, 2 + 49, 64)
    w, b = head.layers.head_dist.weight, head.layers.head_dist.bias
    cls = F.linear(tokens[:, 0], head.layers.head.weight, head.layers.head.bias)
    dist = F.linear(tokens[:, 1], w, b)
    patch = F.linear(tokens[:, 2:], w, b).mean(1)
    torch.testing.assert_close(seen['dist'], dist)

    def field(name):
        return torch.stack([s.get(name) for s in samples])
    torch.testing.assert_close(field('pred_score'), F.softmax((cls + dist) / 2, 1))
    torch.testing.assert_close(field('deit_pred_score'), field('pred_score'))
    torch.testing.assert_close(field('ensemble_pred_score'), F.softmax((cls + dist + patch) / 3, 1))

    metric = PredFieldMetric(field='ensemble', metric=dict(type='Accuracy', topk=(1, )))
    metric.process(None, [s.to_dict() for s in samples])
    result = metric.evaluate(len(samples))
    ens_label = ((cls + dist + patch) / 3).argmax(1)
    gt = torch.cat([s.gt_label for s in samples])
    expected = 100.0 * (ens_label == gt).float().mean().item()
    assert result == {'ensemble/accuracy/top1': pytest.approx(expected)}

    head.ensemble = True  # the ensemble as *the* prediction, also in 'tensor' mode (export)
    with torch.no_grad():
        samples = model(**data, mode='predict')
        out = model(data['inputs'], mode='tensor')
    torch.testing.assert_close(field('pred_score'), F.softmax((cls + dist + patch) / 3, 1))
    torch.testing.assert_close(out, (cls + dist + patch) / 3)

    model = build_fmnist(out_type='cls_token').eval()  # no patch tokens: no ensemble
    model.student.head.ensemble = True
    with pytest.raises(ValueError, match="ensemble=True.*out_type='raw'"):
        model(**data, mode='predict')


# -- the CKF schedule in a real runner -------------------------------------------------------
@HOOKS.register_module(force=True)
class RecordCKFRatioHook(Hook):
    """Records (epoch, iter, ckf_ratio) at the moment loss_cskd *computes*."""
    priority = 'LOWEST'

    def __init__(self):
        self.seen = []

    def before_run(self, runner):
        loss = runner.model.distill_losses['loss_cskd']
        loss.register_forward_pre_hook(
            lambda m, a: self.seen.append((runner.epoch, runner.iter, m.ckf_ratio)))


class TinySet(torch.utils.data.Dataset):
    """``n`` random 28x28 images (batches of 2)."""

    def __init__(self, n):
        self.batch = random_batch(n=n)

    def __len__(self):
        return len(self.batch['inputs'])

    def __getitem__(self, i):
        return dict(inputs=self.batch['inputs'][i], data_samples=self.batch['data_samples'][i])


def run_schedule(tmp_path, schedule, train_cfg, num_images):
    from mmengine.dataset import pseudo_collate
    model = copy.deepcopy(Config.fromfile(FMNIST_CFG).model)
    model.update(teacher_ckpt=None, data_preprocessor=PRE)
    loader = torch.utils.data.DataLoader(TinySet(num_images), batch_size=2,
                                         collate_fn=pseudo_collate)
    runner = Runner(
        model=model, work_dir=str(tmp_path), train_dataloader=loader, train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='DistillScheduleHook', schedules=[schedule]),
                      dict(type='RecordCKFRatioHook')],
        default_scope='mmkd', log_level='WARNING',
        experiment_name=f'cskd_{tmp_path.name}')  # own MessageHub: runs within a second share one
    runner.train()
    seen = next(h for h in runner.hooks if isinstance(h, RecordCKFRatioHook)).seen
    logged = runner.message_hub.get_scalar('train/cskd.ckf_ratio').data[0]
    return seen, list(logged)


@pytest.mark.slow
@pytest.mark.parametrize('kind,expected', [
    ('linear', lambda p: 1 - p),
    ('cos', lambda p: math.cos(math.pi / 2 * p)),
], ids=['linear', 'cos'])
def test_ckf_ratio_follows_epochs_in_a_runner(tmp_path, kind, expected):
    schedule = dict(loss='loss_cskd', attr='ckf_ratio', type=kind, start_value=1.0, end_value=0.0)
    seen, logged = run_schedule(tmp_path, schedule, dict(by_epoch=True, max_epochs=4),
                                num_images=4)  # 2 iterations per epoch
    assert [(e, i) for e, i, _ in seen] == [(e, 2 * e + k) for e in range(4) for k in range(2)]
    for epoch, _, r in seen:
        assert r == pytest.approx(expected(epoch / 4))
    assert logged == pytest.approx([r for _, _, r in seen])


@pytest.mark.slow
def test_ckf_ratio_follows_iterations_in_an_iter_based_run(tmp_path):
    schedule = dict(loss='loss_cskd', attr='ckf_ratio', type='x2', start_value=1.0, end_value=0.0,
                    by_epoch=False)
    # 12 images: one pass, as MMEngine pauses 2 s whenever it restarts an exhausted loader
    seen, logged = run_schedule(tmp_path, schedule, dict(by_epoch=False, max_iters=6),
                                num_images=12)
    assert [i for _, i, _ in seen] == list(range(6))
    for _, it, r in seen:
        assert r == pytest.approx((1 - it / 6) ** 2)
    assert logged == pytest.approx([r for _, _, r in seen])


# -- a timm teacher, converted -------------------------------------------------------------
def test_timm_checkpoint_converter_gives_the_teacher_cskd_needs(tmp_path):
    """A small timm RegNet stands in for regnety_160: same classifier layout (head.fc)."""
    import importlib.util

    import timm
    spec = importlib.util.spec_from_file_location(
        'timm_to_mmpretrain', osp.join(ROOT, 'tools', 'model_converters', 'timm_to_mmpretrain.py'))
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    convert, load_timm_state_dict = converter.convert, converter.load_timm_state_dict
    from mmkd.models.builder import load_teacher_checkpoint
    from mmkd.models.losses.cskd import teacher_classifier

    torch.manual_seed(0)
    ref = timm.create_model('regnety_002', pretrained=False).eval()
    src = str(tmp_path / 'timm.pth')
    torch.save(dict(model=ref.state_dict()), src)  # DeiT's {'model': ...} layout
    dst = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=convert(load_timm_state_dict(src), 'regnety_002')), dst)

    teacher = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TIMMBackbone', model_name='regnety_002', pretrained=False,
                      features_only=True, out_indices=(4, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=368)))
    load_teacher_checkpoint(teacher, dst)  # strict: every key matches
    teacher.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x, mode='tensor'), ref(x), rtol=1e-4, atol=1e-4)
        fc = teacher_classifier(teacher)
        feat = teacher.backbone(x)[-1]
        t_dense = torch.einsum('bchw,kc->bkhw', feat, fc.weight) + fc.bias[:, None, None]
        torch.testing.assert_close(t_dense.mean((2, 3)), ref(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='not a timm regnety_004'):
        convert(load_timm_state_dict(src), 'regnety_004')


# -- a short real run ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                    reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
def test_short_real_run_on_fashion_mnist(tmp_path):
    from tools_helpers import run_tool, scalars, PY
    options = ['model.teacher_ckpt=None', 'train_cfg.max_epochs=2',
               'train_dataloader.dataset.indices=512', 'train_dataloader.batch_size=64',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'val_dataloader.dataset.indices=256', 'val_dataloader.num_workers=0',
               'val_dataloader.persistent_workers=False', 'default_hooks.logger.interval=4']
    run_tool([PY, 'tools/train.py', FMNIST_CFG, '--work-dir', str(tmp_path),
              '--cfg-options', *options], env=dict(OMP_NUM_THREADS='1'))
    assert osp.isfile(tmp_path / 'epoch_2.pth')
    records = scalars(tmp_path)
    train = [r for r in records if 'loss_cskd' in r]
    assert len(train) >= 4 and all(math.isfinite(r['loss_cskd']) for r in train)
    ratios = sorted({r['cskd.ckf_ratio'] for r in train})
    assert ratios == pytest.approx([0.5, 1.0])  # linear CKF over 2 epochs
    val = [r for r in records if 'accuracy/top1' in r]
    assert len(val) == 2 and all('ensemble/accuracy/top1' in r for r in val)

    # the exported student alone predicts both ways, as the distiller did
    from mmkd.apis import extract_student
    student_sd, _ = extract_student(str(tmp_path / 'epoch_2.pth'))
    with DefaultScope.overwrite_default_scope('mmkd'):  # as tools/test.py has it
        student = MODELS.build(Config.fromfile('configs/cskd/deit-small_1xb128_fmnist.py').model)
    student.load_state_dict(student_sd, strict=True)
    distiller = build_fmnist()
    distiller.load_state_dict(torch.load(tmp_path / 'epoch_2.pth')['state_dict'], strict=True)
    data = distiller.data_preprocessor(random_batch(), False)
    with torch.no_grad():
        ours = student.eval().predict(data['inputs'])
        ref = distiller.eval()(**data, mode='predict')
    for key in ('pred_score', 'ensemble_pred_score'):
        torch.testing.assert_close(torch.stack([s.get(key) for s in ours]),
                                   torch.stack([s.get(key) for s in ref]))
