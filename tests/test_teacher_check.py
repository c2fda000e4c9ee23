"""TeacherCheckHook: before the first iteration the teacher is evaluated on validation images fed
as in training. A small CNN teacher trained here (2 epochs of 3072 real Fashion-MNIST images)
passes with the right normalisation, with exactly the accuracy an independent evaluation gives,
and stops the run, naming the causes, when teacher_norm is wrong (0..1 inputs, torchvision's
ToTensor convention, for a teacher trained on standardised pixels). Runs: 64 training images,
256 validation images."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

import mmkd  # noqa: F401
from mmkd.engine import TeacherCheckError, TeacherCheckHook
from mmkd.models.builder import build_model
from mmkd.registry import DATASETS, MODELS
from conftest import FMNIST, MODELS_DIR, runner_from_cfg

pytestmark = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared (tools/setup_env.sh)')

KD = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'
SMALL_CNN = osp.join(MODELS_DIR, 'fmnist_resnet_w4.py')  # 4, 8, 16 channels: fast
MEAN, STD = 72.94, 90.02  # configs/_base_/datasets/fashion_mnist.py
N_VAL = 256


def _dataset(split, n):
    return DATASETS.build(dict(type='FashionMNIST', data_root=FMNIST, split=split,
                               test_mode=split == 'test', indices=n,
                               pipeline=[dict(type='PackInputs')]))


@pytest.fixture(scope='module')
def trained_teacher(tmp_path_factory):
    """A small CNN trained for 2 epochs on 3072 images (plain PyTorch loop, 2 s), and its top-1
    on the first 256 test images, computed here without the distiller."""
    torch.manual_seed(1)
    model = build_model(SMALL_CNN, 'teacher')
    model.init_weights()
    pre = MODELS.build(dict(type='ClsDataPreprocessor', num_classes=10, mean=[MEAN], std=[STD],
                            to_rgb=False))
    train = _dataset('train', 3072)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        order = torch.randperm(len(train)).tolist()
        for i in range(0, len(order), 32):
            data = pre(pseudo_collate([train[j] for j in order[i:i + 32]]), training=True)
            loss = model.loss(data['inputs'], data['data_samples'])['loss']
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = str(tmp_path_factory.mktemp('teacher') / 'teacher.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)

    val = _dataset('test', N_VAL)
    images = torch.stack([val[i]['inputs'] for i in range(N_VAL)]).float()
    labels = torch.tensor([int(val[i]['data_samples'].gt_label) for i in range(N_VAL)])
    with torch.no_grad():
        logits = model.eval()((images - MEAN) / STD, mode='tensor')
    top1 = 100.0 * (logits.argmax(1) == labels).float().mean().item()
    assert top1 > 50, f'the teacher should have learnt something: {top1}'
    return path, top1


def _runner(work_dir, teacher_ckpt, val=True, **check):
    cfg = Config.fromfile(KD)
    cfg.work_dir = str(work_dir)
    cfg.model.update(student=SMALL_CNN, teacher=SMALL_CNN, teacher_ckpt=teacher_ckpt)
    cfg.train_dataloader.update(batch_size=32, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.indices = 64
    cfg.val_dataloader.update(batch_size=100, num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.indices = 1000  # the check reads its first 256
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=10)  # no validation run
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    if not val:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.teacher_check.update(check)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    return runner_from_cfg(cfg)


def _check_hook(runner) -> TeacherCheckHook:
    return next(h for h in runner.hooks if isinstance(h, TeacherCheckHook))


def _log(work_dir) -> str:
    return ''.join(open(f).read() for f in glob.glob(osp.join(str(work_dir), '*', '*.log')))


def test_config_has_the_check_by_default():
    assert Config.fromfile(KD).default_hooks.teacher_check == dict(type='TeacherCheckHook')


@pytest.mark.slow
def test_right_normalisation_passes_and_logs_the_accuracy(trained_teacher, tmp_path):
    path, top1 = trained_teacher
    runner = _runner(tmp_path, path)
    runner.train()
    hook = _check_hook(runner)
    # the distiller's pipeline gives the teacher exactly what the independent evaluation did
    assert hook.top1 == pytest.approx(top1, abs=1e-9)
    assert runner.iter == 2  # and training went on
    assert re.search(rf'teacher top-1 {top1:.2f} % on the first 256 validation images '
                     r'\(inputs \(1, 28, 28\).*chance 10\.00 %\): OK', _log(tmp_path))
    # an equivalent teacher_norm (the data's own) changes nothing
    cfg = _runner(tmp_path / 'same_norm', path).cfg
    cfg.model.teacher_norm = dict(mean=[MEAN], std=[STD])
    runner = runner_from_cfg(cfg)
    runner.call_hook('before_train')
    assert _check_hook(runner).top1 == pytest.approx(top1, abs=1e-9)


@pytest.mark.slow
def test_wrong_teacher_norm_stops_the_run_naming_the_causes(trained_teacher, tmp_path):
    path, top1 = trained_teacher
    # the teacher is told it was trained on 0..1 images: it gets those instead of standardised
    # pixels (8.98 % here; other wrong normalisations of other teachers can land well above
    # chance, which only expected_top1 catches)
    cfg = _runner(tmp_path, path).cfg
    cfg.model.teacher_norm = dict(mean=[0.0], std=[255.0])
    runner = runner_from_cfg(cfg)
    with pytest.raises(TeacherCheckError) as err:
        runner.train()
    msg = str(err.value)
    measured = _check_hook(runner).top1
    assert measured < 15.0 < top1
    assert f'the teacher scores {measured:.2f} % top-1 on the first 256 validation images' in msg
    assert 'near chance (10.00 % for 10 classes' in msg and '>= 1.5 x chance = 15.00 %' in msg
    assert "teacher_norm={'mean': [0.0], 'std': [255.0]}" in msg
    assert 'mean=[72.94], std=[90.02]' in msg  # the data preprocessor's
    assert 'input size: the teacher sees (1, 28, 28) inputs' in msg
    assert f"wrong checkpoint: teacher_ckpt='{path}'" in msg
    assert 'default_hooks.teacher_check.enabled=False' in msg
    assert runner.iter == 0 and not glob.glob(str(tmp_path / '*.pth'))  # nothing was trained


@pytest.mark.slow
def test_expected_top1_and_switching_off(trained_teacher, tmp_path):
    path, top1 = trained_teacher
    runner = _runner(tmp_path, path, expected_top1=99.0, margin=5.0)
    with pytest.raises(TeacherCheckError, match=r'below its expected 99\.00 % minus the margin '
                                                r'of 5 points.*Likely causes'):
        runner.call_hook('before_train')
    runner = _runner(tmp_path / 'ok', path, expected_top1=round(top1), margin=5.0)
    runner.call_hook('before_train')
    assert _check_hook(runner).top1 == pytest.approx(top1)
    cfg = _runner(tmp_path / 'off', path).cfg
    cfg.model.teacher_norm = dict(mean=[0.0], std=[255.0])
    cfg.default_hooks.teacher_check.enabled = False
    runner = runner_from_cfg(cfg)
    runner.call_hook('before_train')  # the mis-normalised teacher, unchecked
    assert _check_hook(runner).top1 is None


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:teacher_ckpt=None')
def test_skips_without_checkpoint_or_val_data_and_leaves_rng_alone(trained_teacher, tmp_path):
    path, _ = trained_teacher
    runner = _runner(tmp_path / 'random', None)
    runner.call_hook('before_train')
    assert _check_hook(runner).top1 is None
    assert 'teacher check skipped: teacher_ckpt=None' in _log(tmp_path / 'random')
    runner = _runner(tmp_path / 'noval', path, val=False)
    runner.call_hook('before_train')
    assert 'teacher check skipped: no validation dataloader' in _log(tmp_path / 'noval')
    # the random streams training draws from are where they were
    runner = _runner(tmp_path / 'rng', path)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    runner.call_hook('before_train')
    assert _check_hook(runner).top1 is not None
    assert torch.equal(torch.get_rng_state(), before)
