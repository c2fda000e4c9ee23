import numpy as np
import pytest
import torch

from mmkd.models import DeiTLoss, DKDLoss, FitNetLoss, KDLoss, NKDLoss
import reference as ref

B, K = 6, 10


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(B, K, generator=g) * 3).double().requires_grad_()
    t = (torch.randn(B, K, generator=g) * 3).double()
    labels = torch.randint(0, K, (B, ), generator=g)
    mixed = torch.softmax(torch.randn(B, K, generator=g), dim=1).double()
    return s, t, labels, mixed


def _np(x):
    return x.detach().numpy()


@pytest.mark.parametrize('T', [1.0, 4.0])
def test_kd_value_and_grad(logits, T):
    s, t, _, _ = logits
    loss = KDLoss(tau=T)(s, t)
    assert loss.item() == pytest.approx(ref.kd(_np(s), _np(t), T), abs=1e-5)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


@pytest.mark.parametrize('T', [1.0, 3.0])
def test_deit_soft_and_hard(logits, T):
    s, t, _, _ = logits
    soft = DeiTLoss(mode='soft', tau=T)(s, t)
    assert soft.item() == pytest.approx(ref.deit_soft(_np(s), _np(t), T), abs=1e-5)
    hard = DeiTLoss(mode='hard')(s, t)
    assert hard.item() == pytest.approx(ref.deit_hard(_np(s), _np(t)), abs=1e-5)
    (soft + hard).backward()
    assert s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='hard'):
        DeiTLoss(mode='medium')


@pytest.mark.parametrize('T,gamma', [(1.0, 1.5), (2.0, 1.0)])
@pytest.mark.parametrize('soft_labels', [False, True])
def test_nkd_value(logits, T, gamma, soft_labels):
    s, t, labels, mixed = logits
    gt = mixed if soft_labels else labels
    t = t.clone().requires_grad_()
    loss = NKDLoss(tau=T, gamma=gamma)(s, t, gt)
    assert loss.item() == pytest.approx(ref.nkd(_np(s), _np(t), _np(gt), T, gamma), abs=1e-5)
    loss.backward()
    assert s.grad.abs().sum() > 0
    assert t.grad is None  # NKD detaches the teacher


def test_nkd_non_target_mask_excludes_gt():
    # the early upstream bug: a wrong mask let the target class into the non-target term.
    s = torch.zeros(1, 3, dtype=torch.float64)
    t = torch.tensor([[0.0, 5.0, 0.0]], dtype=torch.float64)  # teacher mass on class 1
    gt = torch.tensor([1])
    # non-target teacher distribution over {0, 2} is uniform, student's too: the non-target
    # term equals log(2) exactly, whatever the target logits are.
    loss = NKDLoss(tau=1.0, gamma=1.0)(s, t, gt)
    target = -torch.softmax(t, 1)[0, 1] * torch.log_softmax(s, 1)[0, 1]
    assert (loss - target).item() == pytest.approx(np.log(2), abs=1e-9)


@pytest.mark.parametrize('alpha,beta,T', [(1.0, 8.0, 4.0), (1.0, 0.5, 1.0)])
@pytest.mark.parametrize('soft_labels', [False, True])
def test_dkd_value(logits, alpha, beta, T, soft_labels):
    s, t, labels, mixed = logits
    gt = mixed if soft_labels else labels
    loss = DKDLoss(alpha=alpha, beta=beta, tau=T)(s, t, gt)
    assert loss.item() == pytest.approx(ref.dkd(_np(s), _np(t), _np(gt), alpha, beta, T),
                                        rel=1e-5, abs=1e-5)
    loss.backward()
    assert s.grad.abs().sum() > 0


@pytest.mark.parametrize('feat_type', ['map', 'tokens'])
def test_fitnet_value_and_grad(feat_type):
    torch.manual_seed(0)
    loss_fn = FitNetLoss(s_channels=4, t_channels=6, feat_type=feat_type).double()
    if feat_type == 'map':
        s = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
        t = torch.randn(2, 6, 3, 5, dtype=torch.float64)
        w = _np(loss_fn.adapter.weight)[:, :, 0, 0]
        adapted = np.einsum('oc,bchw->bohw', w, _np(s)) + _np(loss_fn.adapter.bias)[None, :, None, None]
    else:
        s = torch.randn(2, 7, 4, dtype=torch.float64, requires_grad=True)
        t = torch.randn(2, 7, 6, dtype=torch.float64)
        adapted = _np(s) @ _np(loss_fn.adapter.weight).T + _np(loss_fn.adapter.bias)
    loss = loss_fn(s, t)
    assert loss.item() == pytest.approx(np.mean((adapted - _np(t)) ** 2), abs=1e-7)
    loss.backward()
    assert s.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss_fn.adapter.parameters())


def test_shape_checks_name_loss_source_and_shapes():
    kd = KDLoss()
    kd.name = 'loss_kd'
    with pytest.raises(ValueError, match=r"loss_kd.*student.logits.*\(4, 10\).*teacher.logits.*\(4, 100\)"):
        kd.check_inputs(torch.zeros(4, 10), torch.zeros(4, 100))
    fit = FitNetLoss(s_channels=8, t_channels=16)
    fit.name = 'loss_fitnet'
    with pytest.raises(ValueError, match=r"loss_fitnet.*8 student channels.*\(2, 4, 7, 7\)"):
        fit.check_inputs(torch.zeros(2, 4, 7, 7), torch.zeros(2, 16, 7, 7))
    with pytest.raises(ValueError, match=r"cannot match.*\(2, 8, 7, 7\).*\(2, 16, 4, 4\)"):
        fit.check_inputs(torch.zeros(2, 8, 7, 7), torch.zeros(2, 16, 4, 4))


@pytest.mark.parametrize('loss_cls', [NKDLoss, DKDLoss])
def test_label_losses_check_batch_sizes(loss_cls):
    loss = loss_cls()
    loss.name = 'loss_x'
    with pytest.raises(ValueError, match=r"loss_x.*batch sizes differ.*\(4, 10\).*\(3,\)"):
        loss.check_inputs(torch.zeros(4, 10), torch.zeros(4, 10), torch.zeros(3))
