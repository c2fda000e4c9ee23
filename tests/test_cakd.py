"""Cross-Architecture KD: loss values against an independent float64 computation, gradients
(the student's adversarial term moves the student, never the discriminator, and vice versa),
multi-view inputs, alternating updates and resume through a real Runner, noisy evaluation,
the ImageNet configs' settings (each config's build and train step: test_configs.py), and a
short tools/train.py run on Fashion-MNIST."""
import copy
import glob
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

import mmkd  # noqa: F401
from mmkd.models import MultiViewGenerator
from mmkd.models.losses.cakd import CAKDLoss, window_ids
from mmkd.registry import MODELS
from conftest import CNN, FMNIST, PRE, ROOT, VIT, random_batch
from reference import conv2d, softmax

pytestmark = pytest.mark.filterwarnings('ignore:pkg_resources is deprecated')
IMAGENET_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'cakd', '*_in1k.py')))
FMNIST_CFG = 'configs/cakd/resnet-small_vit-small_1xb128_fmnist.py'
OPTIM = dict(constructor='CrossArchOptimWrapperConstructor',
             student=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
                          clip_grad=dict(max_norm=5.0)),
             discriminator=dict(optimizer=dict(type='Adam', lr=1e-3)))


def distiller_cfg(**kwargs):
    """Small CNN student (64 x 7 x 7) <- small ViT teacher (7x7 tokens, width 64, 4 heads)."""
    cfg = dict(type='CrossArchDistiller', student=CNN, teacher=VIT, teacher_ckpt=None,
               data_preprocessor=PRE, student_taps=dict(feat='backbone.layer3'),
               teacher_taps=dict(qkv='backbone.layers.3.attn.qkv', tokens='backbone.ln1'),
               distill_losses=dict(loss_cakd=dict(type='CAKDLoss', s_channels=64, t_dims=64,
                                                  t_heads=4)))
    cfg.update(kwargs)
    return cfg


def build(**kwargs):
    with pytest.warns(UserWarning, match='RANDOM'):
        return MODELS.build(distiller_cfg(**kwargs))


# -- independent reference (float64 NumPy, explicit loops) ----------------------------------
def np64(t):
    return t.detach().double().numpy()


def attn(q, k, v):
    out = np.empty_like(q)
    for b in range(q.shape[0]):
        out[b] = softmax(q[b] @ k[b].T / math.sqrt(q.shape[-1])) @ v[b]
    return out


def log_sigmoid(z):
    return -np.log1p(np.exp(-z))


def discriminator(x, layers):
    """3 FC layers, LeakyReLU(0.2) between them; x (..., D) -> (...,) logits."""
    (w1, b1), (w2, b2), (w3, b3) = layers
    h = x @ w1.T + b1
    h = np.where(h > 0, h, 0.2 * h)
    h = h @ w2.T + b2
    h = np.where(h > 0, h, 0.2 * h)
    return (h @ w3.T + b3)[..., 0]


def reference_cakd(s_feat, t_qkv, t_tokens, masks, loss):
    """L_proj1, L_proj2, L_MVG, L_MAD as written in CAKDLoss's docstring (means)."""
    heads, extra = loss.t_heads, loss.t_extra_tokens
    D = t_tokens.shape[-1]
    d = D // heads
    B, c, h, w = s_feat.shape
    N = h * w
    proj = []
    for conv in (loss.pca.q, loss.pca.k, loss.pca.v):
        out = conv2d(s_feat, np64(conv.weight), np64(conv.bias))
        proj.append(out.reshape(B, d, N).transpose(0, 2, 1))  # row-major tokens
    q_s, k_s, v_s = proj
    # the teacher's q, k, v: head h of q is channels [h*d, (h+1)*d), k follows at D, v at 2D
    teacher = []
    for part in range(3):
        acc = np.zeros((B, N, d))
        for head in range(heads):
            start = part * D + head * d
            acc += t_qkv[:, extra:, start:start + d]
        teacher.append(acc / heads)
    q_t, k_t, v_t = teacher
    gq, gk, gv = (np.where(m, t, s) for m, t, s in zip(masks, teacher, proj))
    vv_s = np.stack([v_s[b] @ v_s[b].T for b in range(B)]) / math.sqrt(d)
    vv_t = np.stack([v_t[b] @ v_t[b].T for b in range(B)]) / math.sqrt(d)
    proj1 = ((attn(q_t, k_t, v_t) - attn(gq, gk, gv)) ** 2).mean() + ((vv_t - vv_s) ** 2).mean()
    return (proj1, ) + reference_gl_terms(s_feat, t_tokens, loss)


def reference_gl_terms(s_feat, t_tokens, loss):
    """L_proj2, L_MVG, L_MAD: the GL projector's tokens against the teacher's, and D on both."""
    extra, window = loss.t_extra_tokens, loss.window
    D = t_tokens.shape[-1]
    B, c, h, w = s_feat.shape
    N = h * w
    # GL: position (i, j) uses the Linear of window (i // 4, j // 4), windows numbered row-major
    weight, bias = np64(loss.gl.weight), np64(loss.gl.bias)
    per_row = -(-w // window)
    s_tok = np.empty((B, N, D))
    for i in range(h):
        for j in range(w):
            g = (i // window) * per_row + j // window
            s_tok[:, i * w + j] = s_feat[:, :, i, j] @ weight[g] + bias[g]
    t_tok = t_tokens[:, extra:]
    proj2 = ((t_tok - s_tok) ** 2).mean()

    layers = [(np64(loss.discriminator.layers[i].weight), np64(loss.discriminator.layers[i].bias))
              for i in (0, 2, 4)]
    z_s, z_t = discriminator(s_tok, layers), discriminator(t_tok, layers)
    mvg = log_sigmoid(-z_s).mean()  # log(1 - sigmoid(z))
    mad = (-log_sigmoid(z_t) - log_sigmoid(-z_s)).mean()
    return proj2, mvg, mad


def make_inputs(B=2, c=3, grid=(6, 5), D=8, extra=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    N = grid[0] * grid[1]
    s_feat = torch.randn(B, c, *grid, generator=g)
    t_qkv = torch.randn(B, extra + N, 3 * D, generator=g)
    t_tokens = torch.randn(B, extra + N, D, generator=g)
    return s_feat, t_qkv, t_tokens


def small_loss(grid=(6, 5), **kwargs):
    torch.manual_seed(0)
    args = dict(s_channels=3, t_dims=8, t_heads=2, grid=grid, t_extra_tokens=1, gl_dropout=0.3,
                d_hidden=6, lambda_adv=0.7)
    args.update(kwargs)
    return CAKDLoss(**args)


# -- loss values ---------------------------------------------------------------------------
@pytest.mark.parametrize('grid', [(6, 5), (4, 4)])
def test_loss_matches_independent_computation(grid):
    loss = small_loss(grid).eval()  # eval: no dropout; the substitution masks are given
    s_feat, t_qkv, t_tokens = make_inputs(grid=grid)
    N = grid[0] * grid[1]
    masks = torch.rand(3, 2, N, 4, generator=torch.Generator().manual_seed(1)) < 0.5
    total = loss(s_feat, t_qkv, t_tokens, sub_masks=masks)
    proj1, proj2, mvg, mad = reference_cakd(np64(s_feat), np64(t_qkv), np64(t_tokens),
                                            masks.numpy(), loss)
    parts = loss.log_vars
    assert parts['proj1'].item() == pytest.approx(proj1, rel=1e-5)
    assert parts['proj2'].item() == pytest.approx(proj2, rel=1e-5)
    assert parts['mvg'].item() == pytest.approx(mvg, rel=1e-5)
    assert total.item() == pytest.approx(proj1 + proj2 + 0.7 * mvg, rel=1e-5)
    assert loss.discriminator_loss().item() == pytest.approx(mad, rel=1e-5)


def test_public_code_variant_matches_independent_computation():
    """proj1='scores', pca_kernel=1: 0.2 * MSE(QK^T/sqrt(d)) + 0.05 * MSE(VV^T), a per-token
    Linear projector, no substitution; proj2 and L_MVG as in the paper."""
    loss = small_loss(proj1='scores', proj1_weights=(0.2, 0.05), pca_kernel=1,
                      sub_prob=0.0).train()
    loss.gl.dropout.p = 0.0  # training mode (where substitution would happen), no dropout
    s_feat, t_qkv, t_tokens = make_inputs()
    total = loss(s_feat, t_qkv, t_tokens)
    s, qkv = np64(s_feat), np64(t_qkv)
    B, c, h, w = s.shape
    d, extra = 4, 1
    pix = s.reshape(B, c, h * w).transpose(0, 2, 1)  # (B, N, c)
    q_s, k_s, v_s = (pix @ np64(conv.weight)[:, :, 0, 0].T + np64(conv.bias)
                     for conv in (loss.pca.q, loss.pca.k, loss.pca.v))
    q_t, k_t, v_t = (qkv[:, extra:, part * 8:(part + 1) * 8].reshape(B, h * w, 2, d).mean(2)
                     for part in range(3))
    scores = lambda q, k: np.einsum('bnd,bmd->bnm', q, k) / math.sqrt(d)  # noqa: E731
    rel = lambda v: np.einsum('bnd,bmd->bnm', v, v)  # noqa: E731
    proj1 = (0.2 * ((scores(q_s, k_s) - scores(q_t, k_t)) ** 2).mean()
             + 0.05 * ((rel(v_s) - rel(v_t)) ** 2).mean())
    proj2, mvg, _ = reference_gl_terms(s, np64(t_tokens), loss)
    assert loss.log_vars['proj1'].item() == pytest.approx(proj1, rel=1e-5)
    assert total.item() == pytest.approx(proj1 + proj2 + 0.7 * mvg, rel=1e-5)


@pytest.mark.parametrize('bad, match', [
    (dict(proj1='qk'), "proj1 must be 'attention'"),
    (dict(proj1='scores'), 'set sub_prob=0'),
    (dict(pca_kernel=5), 'pca_kernel must be 3'),
    (dict(proj1_weights=(1.0, )), 'proj1_weights must be'),
    (dict(proj_init='xavier'), "proj_init must be 'default'"),
])
def test_variant_arguments_are_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        small_loss(**bad)


def test_projector_initialisation():
    """'trunc_normal': every projector weight (PCA convs, GL groups) within ±2σ of N(0, 0.02)
    with std near 0.02, biases 0; 'default' keeps PyTorch's (wider) kaiming-uniform."""
    torch.manual_seed(0)
    tn, default = small_loss(proj_init='trunc_normal'), small_loss()
    for loss in (tn, default):
        assert loss.gl is not None
    for name, p in list(tn.pca.named_parameters()) + list(tn.gl.named_parameters()):
        if name.endswith('bias'):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            assert p.abs().max() <= 0.04 and 0.015 < p.std() < 0.025, name
    assert default.pca.q.weight.std() > 0.05  # kaiming-uniform of a 3x3 conv of few channels
    assert default.pca.q.bias.abs().sum() > 0


def test_loss_is_float32_under_autocast():
    loss = small_loss().eval()
    s_feat, t_qkv, t_tokens = make_inputs()
    masks = torch.zeros(3, 2, 30, 4, dtype=torch.bool)
    expected = loss(s_feat, t_qkv, t_tokens, sub_masks=masks)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(s_feat, t_qkv, t_tokens, sub_masks=masks)
        mad = loss.discriminator_loss()
    assert value.dtype == mad.dtype == torch.float32
    torch.testing.assert_close(value, expected)


def test_gl_windows_tile_from_the_corner_with_smaller_edges():
    ids = window_ids((14, 14), 4).view(14, 14)
    assert int(ids.max()) + 1 == 16  # 16 Linears for ViT-B/16's 14x14 grid
    sizes = torch.bincount(ids.flatten()).view(4, 4)
    expected = torch.tensor([4, 4, 4, 2])
    assert torch.equal(sizes, expected[:, None] * expected[None, :])
    assert ids[0, 3] == 0 and ids[0, 4] == 1 and ids[12, 12] == 15 and ids[13, 13] == 15
    assert torch.bincount(window_ids((7, 7), 4)).tolist() == [16, 12, 12, 9]


def test_substitution_and_dropout_only_in_training():
    s_feat, t_qkv, t_tokens = make_inputs()
    none = torch.zeros(3, 2, 30, 4, dtype=torch.bool)
    loss = small_loss(gl_dropout=0.0)
    loss.eval()
    assert torch.equal(loss(s_feat, t_qkv, t_tokens), loss(s_feat, t_qkv, t_tokens, sub_masks=none))
    loss.train()
    torch.manual_seed(0)
    value = loss(s_feat, t_qkv, t_tokens)
    torch.manual_seed(0)
    drawn = torch.rand(3, 2, 30, 4) < 0.5  # the draw forward makes, same seed
    assert torch.equal(value, loss(s_feat, t_qkv, t_tokens, sub_masks=drawn))
    assert not torch.equal(value, loss(s_feat, t_qkv, t_tokens, sub_masks=none))
    assert 0.4 < drawn.float().mean() < 0.6
    # GL dropout: on in training only
    loss = small_loss(gl_dropout=0.5, sub_prob=0.0)
    assert not torch.equal(loss(s_feat, t_qkv, t_tokens), loss(s_feat, t_qkv, t_tokens))
    loss.eval()
    assert torch.equal(loss(s_feat, t_qkv, t_tokens), loss(s_feat, t_qkv, t_tokens))


def test_student_grid_alignment_resize_or_error():
    loss = small_loss(grid=(4, 4)).eval()
    s_small = torch.randn(2, 3, 2, 2)
    _, t_qkv, t_tokens = make_inputs(grid=(4, 4))
    loss.check_inputs(s_small, t_qkv, t_tokens)
    resized = torch.nn.functional.interpolate(s_small, size=(4, 4), mode='bilinear',
                                              align_corners=False)
    torch.testing.assert_close(loss(s_small, t_qkv, t_tokens), loss(resized, t_qkv, t_tokens))
    strict = small_loss(grid=(4, 4), align='error')
    strict.name = 'loss_cakd'
    with pytest.raises(ValueError,
                       match=r"loss_cakd.*differs from the teacher grid 4x4.*\(2, 3, 2, 2\)"):
        strict.check_inputs(s_small, t_qkv, t_tokens)


def test_windowed_teacher_attention_is_a_clear_error():
    loss = small_loss(grid=(4, 4))
    s_feat, t_qkv, t_tokens = make_inputs(grid=(4, 4))
    windows = t_qkv.repeat(4, 1, 1)  # (B * 4 windows, L, 3D), as Swin's W-MSA with 4 windows
    with pytest.raises(ValueError, match='windowed attention'):
        loss.check_inputs(s_feat, windows, t_tokens)


def tiny_swin(img_size):
    return dict(type='ImageClassifier',
                backbone=dict(type='SwinTransformer', img_size=img_size, in_channels=1,
                              arch=dict(embed_dims=16, depths=[1, 1, 1, 2], num_heads=[1, 1, 1, 2])),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=10, in_channels=128))


def test_swin_teacher_grid_and_multi_window_error_at_build():
    taps = dict(qkv='backbone.stages.3.blocks.1.attn.w_msa.qkv', tokens='backbone.norm3')
    loss = dict(type='CAKDLoss', s_channels=64, t_dims=128, t_heads=2)
    model = build(teacher=tiny_swin(224), teacher_taps=taps, distill_losses=dict(loss_cakd=loss))
    assert model.distill_losses.loss_cakd.grid == (7, 7)  # one 7x7 window: global attention
    with pytest.raises(ValueError, match=r"loss_cakd.*w_msa.*window attention \(7x7 windows\) "
                                         r"on a 14x14 grid"):
        build(teacher=tiny_swin(448), teacher_taps=taps, distill_losses=dict(loss_cakd=loss))
    with pytest.raises(ValueError, match=r"t_heads=4 but the teacher's last attention block"):
        build(teacher=tiny_swin(224), teacher_taps=taps,
              distill_losses=dict(loss_cakd=dict(loss, t_heads=4)))


# -- gradients -----------------------------------------------------------------------------
def test_adversarial_term_moves_student_and_gl_never_discriminator():
    loss = small_loss().eval()
    s_feat, t_qkv, t_tokens = make_inputs()
    s_feat.requires_grad_(True)
    masks = torch.zeros(3, 2, 30, 4, dtype=torch.bool)
    params = [s_feat, loss.gl.weight, loss.pca.q.weight]

    def grads(lam):
        loss.lambda_adv = lam
        return torch.autograd.grad(loss(s_feat, t_qkv, t_tokens, sub_masks=masks), params)

    # the gradient of lambda * L_MVG alone: everything else is identical between the two calls
    adv = [a - b for a, b in zip(grads(1.0), grads(0.0))]
    assert adv[0].abs().sum() > 0, 'L_MVG has no gradient on the student feature'
    assert adv[1].abs().sum() > 0, 'L_MVG has no gradient on the GL projector'
    torch.testing.assert_close(adv[2], torch.zeros_like(adv[2]))  # PCA is not in L_MVG

    loss(s_feat, t_qkv, t_tokens, sub_masks=masks).backward()
    assert all(p.grad is None for p in loss.discriminator.parameters())
    assert loss.gl.weight.grad.abs().sum() > 0 and s_feat.grad.abs().sum() > 0

    s_feat.grad = None
    loss.gl.weight.grad = None
    loss.discriminator_loss().backward()
    assert all(p.grad.abs().sum() > 0 for p in loss.discriminator.parameters())
    assert s_feat.grad is None and loss.gl.weight.grad is None


def test_distiller_steps_give_gradient_to_their_side_only():
    model = build(multi_view=None)
    model.train()
    data = model.data_preprocessor(random_batch(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    cakd = model.distill_losses.loss_cakd
    losses['loss_cakd'].backward()
    assert all(p.grad is None for p in cakd.discriminator.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    for part in (model.student.backbone.layer3, cakd.pca, cakd.gl):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())

    model.zero_grad(set_to_none=True)
    cakd.discriminator_loss().backward()
    assert all(p.grad.abs().sum() > 0 for p in cakd.discriminator.parameters())
    others = [p for n, p in model.named_parameters() if 'discriminator' not in n]
    assert all(p.grad is None for p in others)
    assert all(p.grad is None for p in model.teacher.parameters())


def test_discriminator_is_the_distillers_child_and_old_checkpoints_load():
    """The discriminator is trained by its own optimizer and reducer, so it is a child of the
    distiller (``discriminators.<loss>``); its loss keeps an unregistered reference."""
    model = build()
    loss = model.distill_losses.loss_cakd
    assert loss.discriminator is model.discriminators['loss_cakd']
    state = model.state_dict()
    assert any(k.startswith('discriminators.loss_cakd.') for k in state)
    assert not [k for k in state if '.discriminator.' in k]
    steps = model.update_steps()
    assert set(steps) == {'student', 'discriminator'}
    s_ids = {id(p) for p in steps['student'].parameters()}
    d_ids = {id(p) for p in steps['discriminator'].parameters()}
    assert d_ids == {id(p) for p in loss.discriminator.parameters()} and not s_ids & d_ids
    assert s_ids | d_ids == {id(p) for p in model.parameters()}
    # a checkpoint written when the discriminator was the loss's child loads as before
    old = {(k.replace('discriminators.loss_cakd.', 'distill_losses.loss_cakd.discriminator.')):
           v + 1 for k, v in state.items()}
    other = build()
    other.load_state_dict(old, strict=True)
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key] + 1), key
    # a trainable parameter in neither update would never train: an error naming it
    model.stray = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match='stray'):
        model.update_steps()


def test_optimizers_split_parameters_and_keep_names():
    model = build()
    slower = dict(custom_keys={'distill_losses': dict(lr_mult=0.1)})
    optim = dict(OPTIM, student=dict(OPTIM['student'], paramwise_cfg=slower))
    wrappers = build_optim_wrapper(model, optim)
    ids = {name: {id(p) for g in w.optimizer.param_groups for p in g['params']}
           for name, w in wrappers.items()}
    d_ids = {id(p) for p in model.distill_losses.loss_cakd.discriminator.parameters()}
    assert ids['discriminator'] == d_ids
    assert ids['student'] == {id(p) for p in model.parameters()} - d_ids
    assert not {id(p) for p in model.teacher.parameters()} & (ids['student'] | ids['discriminator'])
    gl_weight = model.distill_losses.loss_cakd.gl.weight
    lr = [g['lr'] for g in wrappers['student'].optimizer.param_groups
          if any(p is gl_weight for p in g['params'])]
    assert lr == [pytest.approx(0.005)]  # the custom key matched the distiller's own name
    # top-level keys (as tools/train.py --amp sets type/loss_scale) are defaults of both
    shared = build_optim_wrapper(model, dict(OPTIM, clip_grad=dict(max_norm=1.0)))
    assert shared['discriminator'].clip_grad_kwargs == dict(max_norm=1.0)
    assert shared['student'].clip_grad_kwargs == dict(max_norm=5.0)  # its own wins
    with pytest.raises(TypeError, match='separate optimizers'):
        model.train_step(random_batch(), build_optim_wrapper(
            model, dict(optimizer=dict(type='SGD', lr=0.1))))


# -- multi-view inputs ---------------------------------------------------------------------
def test_multi_view_feeds_half_the_student_and_the_teacher_sees_clean_inputs():
    model = build()
    model.train()
    seen = {}
    model.teacher.backbone.register_forward_hook(lambda m, a, o: seen.__setitem__('t', a[0]))
    model.student.backbone.register_forward_hook(lambda m, a, o: seen.__setitem__('s', a[0]))
    batch = random_batch(n=32)
    torch.manual_seed(0)
    model.train_step(batch, build_optim_wrapper(model, OPTIM))
    clean = (torch.stack(batch['inputs']).float() - 72.94) / 90.02
    torch.testing.assert_close(seen['t'], clean)
    changed = (seen['s'] != clean).flatten(1).any(dim=1)
    selected = model.multi_view.last_selected
    assert torch.equal(changed, selected)
    assert 6 <= int(selected.sum()) <= 26  # Binomial(32, 0.5): mean 16, sd 2.8


def test_multi_view_generator_transforms():
    x = torch.randn(8, 3, 32, 32)
    gen = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    assert torch.equal(MultiViewGenerator(prob=0.0)(x), x)
    every = MultiViewGenerator(prob=1.0)
    out = every(x, generator=gen(0))
    assert out.shape == x.shape and (out != x).flatten(1).any(1).all()
    assert torch.equal(out, every(x, generator=gen(0)))
    # each transform alone changes the image; with everything off it is the identity
    off = dict(crop_scale=None, rotation=0, brightness=0, contrast=0, saturation=0, noise_std=0,
               mask_ratio=0)
    mean, std = torch.tensor([120., 110., 100.]), torch.tensor([60., 55., 50.])
    x = (torch.rand(4, 3, 32, 32) * 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    torch.testing.assert_close(MultiViewGenerator(prob=1.0, mean=mean, std=std, **off)(x), x)
    for name, value in dict(crop_scale=(0.3, 0.5), rotation=30, brightness=0.5, contrast=0.5,
                            saturation=0.5, noise_std=20, mask_ratio=0.5).items():
        one = MultiViewGenerator(prob=1.0, mean=mean, std=std, **{**off, name: value})
        assert not torch.allclose(one(x, generator=gen(1)), x), name
    masked = MultiViewGenerator(prob=1.0, mean=mean, std=std,
                                **{**off, 'mask_ratio': 0.5, 'mask_grid': 4})(x)
    cells = (masked == 0).all(dim=1).view(4, 4, 8, 4, 8).all(dim=2).all(dim=3)
    assert cells.any() and torch.equal((masked == 0).all(1), cells.repeat_interleave(8, 1)
                                       .repeat_interleave(8, 2))


def test_noisy_evaluation_is_separate_and_repeatable():
    from mmkd.evaluation import PredFieldMetric
    model = build(noisy_eval=dict(seed=3)).eval()
    data = model.data_preprocessor(random_batch(n=8), False)
    with torch.no_grad():
        first = model(**copy.deepcopy(data), mode='predict')
        model.train().eval()  # a new evaluation: the same noisy images
        again = model(**copy.deepcopy(data), mode='predict')
        clean = model.student(data['inputs'], mode='tensor').softmax(1)
    noisy = torch.stack([s.noisy_pred_score for s in first])
    torch.testing.assert_close(torch.stack([s.pred_score for s in first]), clean)
    assert not torch.allclose(noisy, clean)
    torch.testing.assert_close(noisy, torch.stack([s.noisy_pred_score for s in again]))
    metric = PredFieldMetric(field='noisy', metric=dict(type='Accuracy', topk=(1, )))
    metric.process(None, [s.to_dict() for s in first])
    assert list(metric.evaluate(8)) == ['noisy/accuracy/top1']


# -- a real Runner: alternating updates, resume ---------------------------------------------
def loader(n=16, batch=4):
    batch_data = random_batch(n=n)
    items = [dict(inputs=x, data_samples=s)
             for x, s in zip(batch_data['inputs'], batch_data['data_samples'])]
    return torch.utils.data.DataLoader(items, batch_size=batch, shuffle=False,
                                       collate_fn=pseudo_collate)


class ChangeRecorder(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        self.before = {k: v.clone() for k, v in model.state_dict().items()}
        self.t_before = [p.clone() for p in model.teacher.parameters()]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        state = runner.model.state_dict()
        changed = {k for k, v in state.items() if not torch.equal(v, self.before[k])}
        self.log.append(dict(d=any('discriminator' in k for k in changed),
                             student=any(k.startswith('student.') for k in changed),
                             gl=any('.gl.' in k for k in changed),
                             teacher=any(not torch.equal(a, b) for a, b in
                                         zip(self.t_before, runner.model.teacher.parameters())),
                             mad='loss_mad' in outputs))

    def __init__(self):
        self.log = []


def runner(work_dir, name, model, train_cfg, hooks=(), **kwargs):
    return Runner(model=model, work_dir=str(work_dir), experiment_name=name,
                  train_dataloader=loader(), train_cfg=train_cfg, optim_wrapper=OPTIM,
                  default_scope='mmkd', custom_hooks=list(hooks), log_level='WARNING',
                  default_hooks=dict(logger=None, checkpoint=dict(type='CheckpointHook', interval=1)
                                     if train_cfg.get('by_epoch') else None),
                  randomness=dict(seed=0), **kwargs)


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:teacher_ckpt=None')
def test_alternating_updates_through_a_runner(tmp_path):
    recorder = ChangeRecorder()
    run = runner(tmp_path, 'cakd_alternating', distiller_cfg(), dict(by_epoch=False, max_iters=11),
                 hooks=[recorder])
    run.train()
    log = recorder.log
    assert [i for i, r in enumerate(log) if r['d']] == [0, 5, 10]
    assert [i for i, r in enumerate(log) if r['mad']] == [0, 5, 10]
    assert all(r['student'] and r['gl'] for r in log)
    assert not any(r['teacher'] for r in log)
    assert int(run.model.train_iter) == 11


@pytest.mark.slow
def test_resume_restores_both_optimizers_and_the_schedule(tmp_path):
    from mmkd.models.builder import build_model
    torch.manual_seed(0)
    path = str(tmp_path / 'vit.pth')
    torch.save(dict(state_dict=build_model(VIT, 'teacher').state_dict()), path)
    # no randomness in the model, so that the runs can be compared
    model = distiller_cfg(teacher_ckpt=path, multi_view=None, distill_losses=dict(
        loss_cakd=dict(type='CAKDLoss', s_channels=64, t_dims=64, t_heads=4, sub_prob=0.0,
                       gl_dropout=0.0)))
    straight, halves = tmp_path / 'straight', tmp_path / 'halves'
    runner(straight, 'cakd_straight', model, dict(by_epoch=True, max_epochs=2)).train()
    runner(halves, 'cakd_half', model, dict(by_epoch=True, max_epochs=1)).train()
    # 4 iterations per epoch: the discriminator's second update (iteration 5) is after the resume
    runner(halves, 'cakd_resumed', model, dict(by_epoch=True, max_epochs=2),
           load_from=str(halves / 'epoch_1.pth'), resume=True).train()
    a, b = torch.load(straight / 'epoch_2.pth'), torch.load(halves / 'epoch_2.pth')
    assert set(b['optimizer']) == {'student', 'discriminator'}
    assert b['optimizer']['discriminator']['state'] and b['optimizer']['student']['state']
    assert int(b['state_dict']['train_iter']) == 8
    assert a['state_dict'].keys() == b['state_dict'].keys()
    differ = [k for k, v in a['state_dict'].items() if not torch.equal(v, b['state_dict'][k])]
    assert differ == []


# -- configs -------------------------------------------------------------------------------
def test_imagenet_configs_cover_the_paper_pairs():
    names = {osp.basename(p) for p in IMAGENET_CONFIGS}
    assert names == {'resnet50_vit-b16_8xb32_in1k.py', 'resnet18_vit-b16_8xb32_in1k.py',
                     'mobilenet-v2_vit-b16_8xb32_in1k.py', 'efficientnet-b0_vit-b16_8xb32_in1k.py',
                     'resnet50_swin-b_8xb32_in1k.py'}
    for path in IMAGENET_CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.train_cfg.max_epochs == 120
        assert cfg.train_dataloader.batch_size * 8 == 256
        student = cfg.optim_wrapper.student.optimizer
        assert (student.type, student.lr, student.momentum, student.weight_decay) == \
            ('SGD', 0.1, 0.9, 1e-4)
        assert cfg.param_scheduler.milestones == [30, 60, 90]
        assert cfg.model.d_interval == 5 and cfg.model.multi_view.prob == 0.5


def test_public_code_ramp_is_the_schedule_hook():
    from mmkd.engine.hooks.distill_schedule_hook import schedule_value
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'cakd',
                                   'resnet18_vit-b16_8xb32_in1k_public-ramp.py'))
    (s, ) = cfg.custom_hooks[0].schedules
    for epoch in range(121):
        ramp = min(max(epoch - 25, 0) / 50, 0.2)
        value = schedule_value(s.type, epoch, s.begin, s.end, s.start_value, s.end_value)
        assert value == pytest.approx(ramp), epoch


# -- the tool ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                    reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
def test_train_tool_on_fashion_mnist_logs_saves_and_exports(tmp_path):
    from mmkd.apis import extract_student
    from tools_helpers import scalars, train
    train(FMNIST_CFG, tmp_path, 'model.teacher_ckpt=None', 'train_cfg.max_epochs=1',
          'train_dataloader.dataset.indices=64', 'train_dataloader.batch_size=16',
          'val_dataloader.dataset.indices=32', 'default_hooks.logger.interval=1')
    records = scalars(tmp_path)
    train_logs = [r for r in records if 'loss_cakd' in r]
    assert len(train_logs) == 4
    for key in ('loss', 'loss_cls', 'loss_cakd', 'cakd.proj1', 'cakd.proj2', 'cakd.mvg',
                'loss_mad'):
        assert all(math.isfinite(r[key]) for r in train_logs if key in r), key
    assert 'loss_mad' in train_logs[0]
    final = [r for r in records if 'accuracy/top1' in r][-1]
    assert 'noisy/accuracy/top1' in final

    ckpt = torch.load(tmp_path / 'epoch_1.pth')
    keys = list(ckpt['state_dict'])
    assert any(k.startswith('discriminators.loss_cakd.') for k in keys)  # trained, saved
    assert not [k for k in keys if k.startswith('teacher')]
    assert set(ckpt['optimizer']) == {'student', 'discriminator'}
    student, backbone = extract_student(str(tmp_path / 'epoch_1.pth'))
    distill_only = ('distill_losses', 'discriminator', 'pca', '.gl.', 'train_iter')
    leaked = [k for k in list(student) + list(backbone) if any(s in k for s in distill_only)]
    assert not leaked
    from mmkd.models.builder import build_model
    plain = build_model(CNN, 'student')
    missing, unexpected = plain.load_state_dict(student, strict=True)
    assert not missing and not unexpected


def test_results_config_terms_on_the_scale_of_the_ce_at_the_first_step():
    """The results table's CAKD config
    (configs/results/resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd.py): at the first step each
    term at its configured weight is within 10x of the student's CE (a term orders of magnitude
    larger would drown the classification, one 100x smaller would do nothing)."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/results/resnet-w8_vit-p7-w128_1xb128_fmnist-10pct_cakd.py'))
    cfg.model.teacher_ckpt = None
    cfg.model.data_preprocessor = PRE
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='RANDOM'):
        model = MODELS.build(cfg.model)
    model.train()
    data = model.data_preprocessor(random_batch(n=16), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    cakd = model.distill_losses.loss_cakd
    ce = float(losses['loss_cls'])
    weight = cakd.loss_weight
    terms = dict(proj1=weight * float(cakd.log_vars['proj1']),
                 proj2=weight * float(cakd.log_vars['proj2']),
                 mvg=weight * cakd.lambda_adv * abs(float(cakd.log_vars['mvg'])))
    for name, value in terms.items():
        assert ce / 100 < value < 10 * ce, (name, value, ce)
