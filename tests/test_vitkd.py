"""ViTKD: loss value against an independent float64 computation, mask, gradients, the
distiller on small ViTs, and the paper configs' settings (each config's build and train step:
test_configs.py)."""
import copy
import functools
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmkd  # noqa: F401
from mmkd.models.losses import ViTKDLoss
from mmkd.registry import MODELS
from conftest import DEIT, PRE, ROOT, VIT, random_batch
from reference import conv2d

# mmengine's pkg_resources and mmpretrain's DeiT3 deprecation notices: not ours to fix
pytestmark = pytest.mark.filterwarnings('ignore:pkg_resources is deprecated',
                                        'ignore:The `use_layer_scale`')
VITKD_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'vitkd', '*.py')))
TAPS = dict(low0='backbone.layers.0', low1='backbone.layers.1', high='backbone.ln1')


# -- independent reference (float64 NumPy, one token / one position at a time) -------------
def reference_vitkd(s_low, t_low, s_high, t_high, params, noise, alpha, beta, lam, h, w):
    """``s_low``/``t_low``: lists of two (B, N, D) arrays, patch tokens only; ``params``: the
    aligners (None = identity), mask token and generator convs as float64 arrays."""
    B, N, _ = s_high.shape

    def linear(wb, v):
        return v if wb is None else wb[0] @ v + wb[1]

    lr = 0.0
    for layer in range(2):
        for b in range(B):
            for n in range(N):
                diff = linear(params['low'][layer], s_low[layer][b, n]) - t_low[layer][b, n]
                lr += np.sum(diff ** 2)
    lr = alpha * lr / B

    num_keep = int(N * (1 - lam))
    gen = 0.0
    for b in range(B):
        # masked <=> at least num_keep tokens have smaller noise (rank >= num_keep)
        masked = [sum(noise[b, m] < noise[b, n] for m in range(N)) >= num_keep for n in range(N)]
        grid = np.empty((params['mask_token'].shape[0], h, w))
        for n in range(N):
            i, j = divmod(n, w)  # row-major patch order
            token = params['mask_token'] if masked[n] else linear(params['high'], s_high[b, n])
            grid[:, i, j] = token
        hidden = np.maximum(conv2d(grid[None], *params['conv1']), 0)
        out = conv2d(hidden, *params['conv2'])[0]
        for n in range(N):
            if masked[n]:
                i, j = divmod(n, w)
                gen += np.sum((out[:, i, j] - t_high[b, n]) ** 2)
    gen = beta * gen / (B * lam)
    return lr, gen


def loss_params(loss):
    def np64(t):
        return t.detach().double().numpy()

    def wb(m):
        return None if isinstance(m, torch.nn.Identity) else (np64(m.weight), np64(m.bias))

    return dict(low=[wb(m) for m in loss.low_align], high=wb(loss.high_align),
                mask_token=np64(loss.mask_token).reshape(-1),
                conv1=(np64(loss.generator[0].weight), np64(loss.generator[0].bias)),
                conv2=(np64(loss.generator[2].weight), np64(loss.generator[2].bias)))


def random_inputs(B, s_dims, t_dims, s_extra, t_extra, N, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    feats = {}
    for key in ('low0', 'low1', 'high'):
        feats[f's_{key}'] = torch.randn(B, s_extra + N, s_dims, generator=g)
        feats[f't_{key}'] = torch.randn(B, t_extra + N, t_dims, generator=g)
    for v in feats.values():
        v.requires_grad_(requires_grad)
    return feats, torch.rand(B, N, generator=g)


def assert_rel_close(actual, expected, rtol=1e-5):
    assert abs(actual - expected) <= rtol * max(abs(expected), 1e-12), (actual, expected)


# -- the loss alone -----------------------------------------------------------------------
@pytest.mark.parametrize('s_dims,t_dims,lam', [(8, 8, 0.5), (6, 10, 0.5), (6, 10, 0.3)])
def test_loss_matches_independent_computation(s_dims, t_dims, lam):
    torch.manual_seed(0)
    h, w, B, s_extra, t_extra = 3, 4, 2, 2, 1  # non-square grid; dist+cls vs cls token
    loss = ViTKDLoss(s_dims, t_dims, alpha=0.7, beta=0.3, lambda_mask=lam,
                     s_extra_tokens=s_extra, t_extra_tokens=t_extra, grid=(h, w))
    with torch.no_grad():  # a non-zero mask token, so that using it is visible in the value
        loss.mask_token.normal_()
    assert (s_dims == t_dims) == isinstance(loss.high_align, torch.nn.Identity)
    assert (s_dims == t_dims) == (sum(p.numel() for p in loss.low_align.parameters()) == 0)
    feats, noise = random_inputs(B, s_dims, t_dims, s_extra, t_extra, h * w)
    loss.check_inputs(**feats, noise=noise)
    value = loss(**feats, noise=noise)
    assert value.dim() == 0

    a = {k: v.double().numpy() for k, v in feats.items()}
    lr, gen = reference_vitkd(
        [a['s_low0'][:, s_extra:], a['s_low1'][:, s_extra:]],
        [a['t_low0'][:, t_extra:], a['t_low1'][:, t_extra:]],
        a['s_high'][:, s_extra:], a['t_high'][:, t_extra:],
        loss_params(loss), noise.double().numpy(), 0.7, 0.3, lam, h, w)
    assert_rel_close(loss.last_losses['loss_lr'].item(), lr)
    assert_rel_close(loss.last_losses['loss_gen'].item(), gen)
    assert_rel_close(value.item(), lr + gen)


def test_default_coefficients():
    loss = ViTKDLoss(4, 4, grid=(2, 2), s_extra_tokens=1, t_extra_tokens=1)
    assert (loss.alpha, loss.beta, loss.lambda_mask) == (3e-5, 3e-6, 0.5)
    assert torch.equal(loss.mask_token, torch.zeros(1, 1, 4))


@pytest.mark.parametrize('N', [1, 7, 35, 196])
@pytest.mark.parametrize('lam', [0.5, 0.3, 0.75, 1.0])
def test_masked_count_and_which_tokens(N, lam):
    loss = ViTKDLoss(4, 4, lambda_mask=lam)
    noise = torch.rand(3, N, generator=torch.Generator().manual_seed(N))
    mask = loss.random_mask(noise)
    expected = N - int(N * (1 - lam))
    assert mask.shape == (3, N)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask.sum(dim=1).tolist() == [expected] * 3
    for b in range(3):  # the masked tokens are those of largest noise
        masked, kept = noise[b][mask[b] == 1], noise[b][mask[b] == 0]
        if len(masked) and len(kept):
            assert masked.min() > kept.max()


def test_gradients_reach_student_and_modules_not_teacher():
    loss = ViTKDLoss(6, 10, s_extra_tokens=1, t_extra_tokens=1, grid=(3, 4))
    feats, noise = random_inputs(2, 6, 10, 1, 1, 12, requires_grad=True)
    loss(**feats, noise=noise).backward()
    for key in ('s_low0', 's_low1', 's_high'):
        grad = feats[key].grad
        assert grad is not None and grad[:, 1:].abs().sum() > 0, key
        assert grad[:, :1].abs().sum() == 0, f'{key}: the cls token must not be distilled'
    for key in ('t_low0', 't_low1', 't_high'):
        assert feats[key].grad is None, f'{key} got a gradient'
    modules = dict(low_align0=loss.low_align[0], low_align1=loss.low_align[1],
                   high_align=loss.high_align, generator=loss.generator)
    for name, module in modules.items():
        for pname, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f'{name}.{pname}'
    assert loss.mask_token.grad is not None and loss.mask_token.grad.abs().sum() > 0


def test_check_inputs_names_loss_source_and_shapes():
    loss = ViTKDLoss(6, 10, s_extra_tokens=1, t_extra_tokens=2, grid=(3, 4))
    loss.name = 'loss_vitkd'
    feats, _ = random_inputs(2, 6, 10, 1, 2, 12)
    loss.check_inputs(**feats)
    bad = dict(feats, t_high=torch.randn(2, 14, 12))
    with pytest.raises(ValueError,
                       match=r"ViTKDLoss 'loss_vitkd'.*width 10.*teacher\.high.*\(2, 14, 12\)"):
        loss.check_inputs(**bad)
    bad = dict(feats, s_low1=torch.randn(2, 17, 6))  # 16 patches: another resolution
    with pytest.raises(ValueError,
                       match=r"1 extra \+ 3x4 patch tokens.*student\.low1.*\(2, 17, 6\)"):
        loss.check_inputs(**bad)
    with pytest.raises(ValueError, match='set s_extra_tokens'):
        ViTKDLoss(6, 10).setup(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match='set grid'):  # never a silently assumed square grid
        ViTKDLoss(6, 10, s_extra_tokens=1, t_extra_tokens=1).setup(torch.nn.Linear(1, 1),
                                                                   torch.nn.Linear(1, 1))


# -- in a distiller: small ViTs of different widths and depths -------------------------------
def fmnist_model(path, width, depth, img_size=(28, 28)):
    cfg = Config.fromfile(path).model
    cfg.backbone.arch = dict(embed_dims=width, num_layers=depth, num_heads=4,
                             feedforward_channels=2 * width)
    cfg.backbone.update(img_size=img_size, drop_path_rate=0.0)
    cfg.head.in_channels = width
    return cfg.to_dict()


def build_small(s_dims=64, t_dims=96, img_size=(28, 20), loss_t_dims=None, **loss_kwargs):
    return MODELS.build(dict(
        type='ClassificationDistiller',
        student=fmnist_model(VIT, s_dims, 4, img_size),   # cls token
        teacher=fmnist_model(DEIT, t_dims, 6, img_size),  # cls + distillation tokens, deeper
        teacher_ckpt=None, data_preprocessor=PRE, student_taps=TAPS, teacher_taps=TAPS,
        distill_losses=dict(loss_vitkd=dict(type='ViTKDLoss', s_dims=s_dims,
                                            t_dims=loss_t_dims or t_dims, **loss_kwargs))))


def small_batch(n=2, size=(28, 20), seed=0):
    data = random_batch(n=n, seed=seed)
    g = torch.Generator().manual_seed(seed)
    data['inputs'] = [torch.randint(0, 256, (1, *size), generator=g, dtype=torch.uint8)
                      for _ in range(n)]
    return data


@pytest.mark.filterwarnings('ignore:teacher_ckpt=None')
def test_distiller_small_vits_value_and_train_steps():
    torch.manual_seed(0)
    model = build_small(alpha=0.5, beta=0.2)
    loss = model.distill_losses['loss_vitkd']
    # read from the models: the extra tokens of each and the non-square 7x5 grid
    assert (loss.s_extra_tokens, loss.t_extra_tokens, loss.grid) == (1, 2, (7, 5))
    model.train()

    # value of one step against the reference on features captured independently of the taps;
    # the final norm is applied here to the last block's output, so the 'high' tap must be it
    feats = {}

    def keep(key, then=None):
        def hook(module, args, output):
            with torch.no_grad():
                feats[key] = (then(output) if then else output).detach().double().numpy()
        return hook

    for role, m in (('s', model.student), ('t', model.teacher)):
        bb = m.backbone
        bb.layers[0].register_forward_hook(keep(f'{role}_low0'))
        bb.layers[1].register_forward_hook(keep(f'{role}_low1'))
        bb.layers[-1].register_forward_hook(keep(f'{role}_high', bb.ln1))
    noise = torch.rand(2, 35, generator=torch.Generator().manual_seed(1))
    loss.forward = functools.partial(ViTKDLoss.forward, loss, noise=noise)
    with torch.no_grad():
        loss.mask_token.normal_()
    data = model.data_preprocessor(small_batch(), True)
    value = model(**data, mode='loss')['loss_vitkd'].item()
    del loss.forward
    a = feats  # patch tokens: the student has a cls token, the teacher cls + distillation
    lr, gen = reference_vitkd(
        [a['s_low0'][:, 1:], a['s_low1'][:, 1:]], [a['t_low0'][:, 2:], a['t_low1'][:, 2:]],
        a['s_high'][:, 1:], a['t_high'][:, 2:], loss_params(loss), noise.double().numpy(),
        0.5, 0.2, 0.5, 7, 5)
    assert_rel_close(value, lr + gen)

    # two real steps: logged under its name, finite; aligners/mask token/generator and the
    # student learn, the teacher neither gets gradients nor changes
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type='AdamW', lr=1e-3)))
    in_optim = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert all(id(p) in in_optim for p in loss.parameters())
    t_before = copy.deepcopy(model.teacher.state_dict())
    l_before = copy.deepcopy(loss.state_dict())
    s_before = copy.deepcopy(model.student.backbone.layers[0].state_dict())
    logs = [model.train_step(small_batch(seed=s), wrapper) for s in range(2)]
    for log in logs:
        assert {'loss', 'loss_cls', 'loss_vitkd'} <= set(log)
        assert torch.isfinite(log['loss_vitkd']) and log['loss_vitkd'] > 0
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, t_before[k]), f'teacher tensor {k} changed'
    assert all(p.grad is None for p in model.teacher.parameters())
    for k, v in loss.state_dict().items():
        assert not torch.equal(v, l_before[k]), f'ViTKD parameter {k} did not learn'
    for k, v in model.student.backbone.layers[0].state_dict().items():
        assert not torch.equal(v, s_before[k]), f'student block 0 tensor {k} did not learn'


@pytest.mark.filterwarnings('ignore:teacher_ckpt=None')
def test_distiller_rejects_wrong_widths_at_build():
    with pytest.raises(ValueError, match=r"ViTKDLoss 'loss_vitkd': t_dims=64 but the teacher's "
                                         'backbone has width 96'):
        build_small(s_dims=64, t_dims=96, loss_t_dims=64)


# -- the paper configs ---------------------------------------------------------------------
PAIRS = dict(zip(('deit-t_deit3-s_8xb128_in1k', 'deit-s_deit3-b_8xb128_in1k',
                  'deit-b_deit3-l_8xb128_in1k'),
                 (('deit-tiny', 192, 's', 384), ('deit-small', 384, 'b', 768),
                  ('deit-base', 768, 'l', 1024))))


def config(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'vitkd', f'{name}.py'))


def test_every_vitkd_config_is_tested():
    names = {osp.basename(p) for p in VITKD_CONFIGS}
    assert names == {f'{pair}{suffix}.py' for pair in PAIRS for suffix in ('', '_nkd')}


@pytest.mark.parametrize('pair', PAIRS)
def test_config_teacher_is_the_checkpoints_architecture(pair):
    """The teacher is the mmpretrain model the checkpoint is named after: its DeiT III
    pre-trained on ImageNet-21k (a wrong architecture would fail the strict load only at
    start-up, after the job waited in the queue)."""
    from mmpretrain.apis import ModelHub
    cfg = config(pair)
    _, _, t_arch, t_dims = PAIRS[pair]
    name = cfg.model.teacher
    assert osp.basename(cfg.model.teacher_ckpt) == f'{name}.pth'
    assert '_in21k-pre_' in name
    hub = ModelHub.get(name)
    assert hub.weights.endswith('.pth')  # what docs/vitkd.md tells to download
    assert (hub.config.model.backbone.type, hub.config.model.backbone.arch) == ('DeiT3', t_arch)
    assert hub.config.model.head.in_channels == t_dims


def test_imagenet_pipelines_build_and_run():
    from mmcv.transforms import Compose
    from mmpretrain.registry import TRANSFORMS
    cfg = config('deit-t_deit3-s_8xb128_in1k')
    img = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline):
        assert pipeline[0].type == 'LoadImageFromFile'
        # mmpretrain's registry: the types are mmpretrain's (mmkd's scope only falls back to it)
        out = Compose([TRANSFORMS.build(t) for t in pipeline[1:]])(
            dict(img=img.copy(), img_shape=img.shape[:2], ori_shape=img.shape[:2], gt_label=3))
        assert tuple(out['inputs'].shape) == (3, 224, 224)


@pytest.mark.parametrize('pair', PAIRS)
def test_config_paper_setting(pair):
    cfg = config(pair)
    s_arch, s_dims, t_arch, t_dims = PAIRS[pair]
    assert cfg.default_scope == 'mmkd'
    student, teacher = cfg.model.student, cfg.model.teacher
    assert (student.backbone.type, student.backbone.arch) == ('VisionTransformer', s_arch)
    assert student.head.in_channels == s_dims
    assert student.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')
    assert teacher.startswith(f'deit3-{dict(s="small", b="base", l="large")[t_arch]}-p16_')
    assert cfg.model.teacher_ckpt.startswith('checkpoints/deit3-')
    loss = cfg.model.distill_losses.loss_vitkd
    assert (loss.s_dims, loss.t_dims, loss.alpha, loss.beta, loss.lambda_mask) == \
        (s_dims, t_dims, 3e-5, 3e-6, 0.5)
    assert cfg.model.data_preprocessor.batch_augments.augments == [
        dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]
    assert (cfg.optim_wrapper.optimizer.type, cfg.optim_wrapper.optimizer.lr,
            cfg.optim_wrapper.optimizer.weight_decay) == ('AdamW', 1e-3, 0.05)
    assert cfg.auto_scale_lr.base_batch_size == 1024 == cfg.train_dataloader.batch_size * 8
    assert cfg.train_cfg.max_epochs == 300


@pytest.mark.parametrize('pair', PAIRS)
def test_vitkd_config_is_its_nkd_config_without_nkd(pair):
    """So the train step of the *_nkd config (test_configs.py) also runs everything of the
    ViTKD-only one."""
    plain, with_nkd = config(pair).to_dict(), config(f'{pair}_nkd').to_dict()
    assert with_nkd['model']['distill_losses'].pop('loss_nkd') == dict(
        type='NKDLoss', tau=1.0, gamma=1.0)
    assert with_nkd == plain
