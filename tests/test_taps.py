"""Feature taps record only inside a recording (mmkd/models/taps.py)."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from mmkd.models.taps import FeatureTaps
from mmkd.registry import MODELS
from conftest import PRE, random_batch

pytestmark = pytest.mark.filterwarnings('ignore:teacher_ckpt=None')


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_records_inside_the_context_only():
    net = small_net()
    taps = FeatureTaps(net, {'hidden': '1', 'pre': dict(path='2', io='input')}, 'student')
    x = torch.randn(5, 4)
    net(x)  # outside: the hooks keep nothing
    with taps.recording() as records:
        assert records == {}
        out = net(x)
    hidden = F.relu(net[0](x))
    torch.testing.assert_close(records['hidden'], hidden)
    torch.testing.assert_close(records['pre'], hidden)  # the input of module '2'
    assert records['hidden'].grad_fn is not None and out.grad_fn is not None
    net(2 * x)  # after: the yielded dict is not written again
    torch.testing.assert_close(records['hidden'], hidden)
    with taps.recording() as again:
        net(x)
        net(2 * x)  # a module called twice: the last call's tensor
    torch.testing.assert_close(again['hidden'], F.relu(net[0](2 * x)))


def test_recordings_do_not_nest_and_end_on_errors():
    net = small_net()
    taps = FeatureTaps(net, {'hidden': '1'}, 'teacher')
    with taps.recording():
        with pytest.raises(RuntimeError, match='teacher taps are already recording'):
            with taps.recording():
                pass
    with pytest.raises(ValueError):
        with taps.recording():
            raise ValueError('mid-forward')
    with taps.recording() as records:  # the failed recording ended
        net(torch.randn(2, 4))
    assert set(records) == {'hidden'}
    taps.remove()
    with taps.recording() as records:
        net(torch.randn(2, 4))
    assert records == {}


def build_cskd(order):
    """The Fashion-MNIST CSKD distiller (random teacher), its losses in ``order``."""
    cfg = copy.deepcopy(
        Config.fromfile('configs/cskd/deit-small_resnet-small_1xb128_fmnist.py').model)
    cfg.update(teacher_ckpt=None, data_preprocessor=PRE)
    cfg.distill_losses = {k: cfg.distill_losses[k] for k in order}
    torch.manual_seed(0)
    return MODELS.build(cfg)


@pytest.mark.parametrize('order', [('loss_deit', 'loss_cskd'), ('loss_cskd', 'loss_deit')])
def test_a_loss_calling_a_tapped_module_changes_no_record(order):
    """CSKD's loss applies the student's distillation head to every patch token; the DeiT loss,
    before or after it, still gets the distillation token's logits (the ``dist_logits`` tap)."""
    model = build_cskd(order)
    head = model.student.head
    seen, kwargs = {}, {}
    model.student.backbone.register_forward_hook(lambda m, a, o: seen.__setitem__('raw', o[-1]))
    model.distill_losses.loss_deit.register_forward_pre_hook(
        lambda m, args, kw: kwargs.update(kw), with_kwargs=True)
    data = model.data_preprocessor(random_batch(n=4), True)
    losses = model(**data, mode='loss')
    assert set(order) <= set(losses)
    dist = F.linear(seen['raw'][:, 1], head.layers.head_dist.weight, head.layers.head_dist.bias)
    torch.testing.assert_close(kwargs['s_logits'], dist)


def test_evaluation_and_tensor_mode_record_nothing():
    """Only the step records: predict and mode='tensor' leave no graph-holding tensor in the
    taps (a recording opened afterwards starts empty and the last step's records are kept by
    no one but the step)."""
    model = build_cskd(('loss_deit', 'loss_cskd'))
    data = model.data_preprocessor(random_batch(n=4), True)
    model(**data, mode='loss')
    out = model(data['inputs'], mode='tensor')
    assert out.grad_fn is not None
    model.eval()
    with torch.no_grad():
        model(**model.data_preprocessor(random_batch(n=4), False), mode='predict')
    for taps in (model.student_taps, model.teacher_taps):
        assert not [v for v in vars(taps).values() if isinstance(v, (dict, torch.Tensor))
                    and any(isinstance(t, torch.Tensor) for t in
                            (v.values() if isinstance(v, dict) else [v]))]
