"""A labelled fraction (PartialLabels): unlabelled samples add nothing to the student's
cross-entropy, a loss that reads labels takes the teacher's top-1 for them when asked
(unlabelled_targets='teacher') and is stopped, naming itself, when not."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

import mmkd  # noqa: F401
from mmkd.datasets import UNLABELLED, PartialLabels
from mmkd.models.builder import build_model
from mmkd.registry import DATASETS, MODELS
from conftest import FMNIST, MODELS_DIR, PRE

needs_data = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared (tools/setup_env.sh)')


def _batch(num_labelled, n=8):
    ds = DATASETS.build(dict(type='FashionMNIST', data_root=FMNIST, split='train', indices=n,
                             pipeline=[dict(type='mmkd.PartialLabels', num_labelled=num_labelled),
                                       dict(type='PackInputs')]))
    return pseudo_collate([ds[i] for i in range(n)])


def test_labels_kept_by_index_only():
    t = PartialLabels(num_labelled=3)
    assert [t(dict(sample_idx=i, gt_label=7))['gt_label'] for i in range(5)] == \
        [7, 7, 7, UNLABELLED, UNLABELLED]
    assert PartialLabels(None)(dict(sample_idx=10 ** 6, gt_label=2))['gt_label'] == 2
    with pytest.raises(KeyError, match='needs the sample index'):
        t(dict(gt_label=1))
    with pytest.raises(ValueError, match='num_labelled=0'):
        PartialLabels(0)


@needs_data
@pytest.mark.parametrize('model', ['fmnist_vit_p7_w64.py', 'fmnist_resnet_w4.py'])
def test_student_cross_entropy_counts_only_labelled_samples(model):
    torch.manual_seed(0)
    student = build_model(osp.join(MODELS_DIR, model), 'student')
    student.init_weights()
    data = MODELS.build(PRE)(_batch(num_labelled=5), True)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    assert (labels[5:] == UNLABELLED).all() and (labels[:5] >= 0).all()
    loss = student.loss(data['inputs'], data['data_samples'])['loss']
    logits = student(data['inputs'], mode='tensor').double()
    # the batch mean over all 8 samples, the 3 unlabelled ones contributing zero
    expected = F.cross_entropy(logits[:5], labels[:5], reduction='sum') / 8
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@needs_data
@pytest.mark.filterwarnings('ignore:teacher_ckpt=None')
def test_label_reading_loss_gets_the_teachers_top1_for_unlabelled_samples():
    cfg = Config.fromfile('configs/results/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct_nkd.py')
    cfg.model.teacher_ckpt = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert model.unlabelled_targets == 'teacher' and model._label_readers == ['loss_nkd']
    data = model.data_preprocessor(_batch(num_labelled=5), True)
    captured = {}
    nkd = model.distill_losses['loss_nkd']
    nkd.register_forward_hook(lambda m, args, kwargs, out: captured.update(kwargs),
                              with_kwargs=True)
    model.loss(data['inputs'], data['data_samples'])
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    with torch.no_grad():
        t_top1 = model.teacher(data['inputs'], mode='tensor').argmax(1)
    expected = torch.where(labels == UNLABELLED, t_top1, labels)
    assert torch.equal(captured['gt'], F.one_hot(expected, 10).float())
    assert not torch.equal(expected[5:], labels[5:])


@needs_data
@pytest.mark.filterwarnings('ignore:teacher_ckpt=None')
def test_unlabelled_samples_without_unlabelled_targets_stop_naming_the_loss():
    cfg = Config.fromfile('configs/results/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct_nkd.py')
    cfg.model.update(teacher_ckpt=None, unlabelled_targets=None)
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(_batch(num_labelled=5), True)
    with pytest.raises(ValueError, match=r"3 of the 8 samples .* loss_nkd read the labels: "
                                         r"set the distiller's unlabelled_targets='teacher'"):
        model.loss(data['inputs'], data['data_samples'])
    # a fully labelled batch needs nothing; a loss that reads no labels needs nothing either
    data = model.data_preprocessor(_batch(num_labelled=None), True)
    assert torch.isfinite(model.loss(data['inputs'], data['data_samples'])['loss_nkd'])
    cfg = Config.fromfile('configs/results/vit-p7-w64_resnet-w16_1xb128_fmnist-10pct_kd.py')
    cfg.model.teacher_ckpt = None
    kd = MODELS.build(cfg.model)
    data = kd.data_preprocessor(_batch(num_labelled=5), True)
    assert kd._label_readers == [] and torch.isfinite(
        kd.loss(data['inputs'], data['data_samples'])['loss_kd'])
    with pytest.raises(ValueError, match="unlabelled_targets='soft'"):
        cfg.model.unlabelled_targets = 'soft'
        MODELS.build(cfg.model)


@needs_data
@pytest.mark.filterwarnings('ignore:teacher_ckpt=None')
def test_distillers_cross_entropy_weighs_every_sample_the_same():
    """The distillation terms are means over the whole batch; the student's CE beside them is
    the sum over the labelled samples divided by the batch size: each sample adds its CE if it
    has a label, and its distillation terms (docs/benchmarks.md: the mean over the labelled
    ones was measured too, and cost the logit methods 3 points)."""
    cfg = Config.fromfile('configs/results/resnet-w8_resnet-w16_1xb128_fmnist-10pct_fitnet.py')
    cfg.model.teacher_ckpt = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(_batch(num_labelled=5), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    with torch.no_grad():
        logits = model.student(data['inputs'], mode='tensor').double()
    expected = (F.cross_entropy(logits[:5], labels[:5], reduction='sum') / 8
                * model.student_loss_weight)
    assert losses['loss_cls'].item() == pytest.approx(expected.item(), rel=1e-5)
