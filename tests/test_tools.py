"""The tools as users run them, on real Fashion-MNIST: train, distil, resume, DDP, export."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmkd  # noqa: F401
from conftest import FMNIST, ROOT
from tools_helpers import PY, run_tool, scalars, train

pytestmark = [
    pytest.mark.slow,  # tools/ scripts in subprocesses
    pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                       reason='Fashion-MNIST not prepared: run tools/setup_env.sh'),
]

CNN_CFG = 'configs/fmnist/resnet-small_1xb128_fmnist.py'
KD_CFG = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'
ONE_EPOCH = ['train_cfg.max_epochs=1']


@pytest.fixture(scope='module')
def cnn_teacher(tmp_path_factory):
    """A small CNN trained for 48 iterations by tools/train.py: a real runner checkpoint."""
    work = tmp_path_factory.mktemp('cnn_teacher')
    train(CNN_CFG, work, 'train_cfg.max_epochs=2', 'randomness.seed=0')
    return work


def test_train_writes_checkpoint_logs_and_accuracy(cnn_teacher):
    assert osp.isfile(cnn_teacher / 'epoch_2.pth')
    records = scalars(cnn_teacher)
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) >= 6 and losses[-1] < losses[0] - 0.2, f'the loss does not fall: {losses}'
    acc = [r['accuracy/top1'] for r in records if 'accuracy/top1' in r]
    assert len(acc) == 2 and acc[-1] > 25.0, f'48 iterations should be well above chance (10%): {acc}'


def test_distillation_run_with_trained_teacher(cnn_teacher, tmp_path):
    cfg = tmp_path / 'kd_eval_teacher.py'
    cfg.write_text(f"_base_ = ['{ROOT}/{KD_CFG}']\n"
                   "model = dict(eval_teacher=True)\n"
                   "val_evaluator = [dict(type='Accuracy', topk=(1, )),\n"
                   "                 dict(type='TeacherMetric', metric=dict(type='Accuracy', topk=(1, )))]\n")
    train(str(cfg), tmp_path, *ONE_EPOCH, f'model.teacher_ckpt={cnn_teacher}/epoch_2.pth')
    records = scalars(tmp_path)
    assert any('loss_kd' in r and 'loss_cls' in r for r in records)
    final = [r for r in records if 'accuracy/top1' in r][-1]
    teacher_acc = [r['accuracy/top1'] for r in scalars(cnn_teacher) if 'accuracy/top1' in r][-1]
    # the frozen teacher evaluated inside the distiller scores exactly what it scored alone
    assert final['teacher/accuracy/top1'] == pytest.approx(teacher_acc)
    ckpt = torch.load(tmp_path / 'epoch_1.pth')
    assert not [k for k in ckpt['state_dict'] if k.startswith('teacher')]
    assert any(k.startswith('student.') for k in ckpt['state_dict'])


def _same_params(a, b):
    sa, sb = torch.load(a)['state_dict'], torch.load(b)['state_dict']
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


def test_resume_continues_identically(cnn_teacher, tmp_path):
    # DropPath draws from the global RNG, which a resumed process does not restore
    student = Config.fromfile(osp.join(ROOT, 'configs/_base_/models/fmnist_vit_small.py')).model
    student.backbone.drop_path_rate = 0.0
    cfg = tmp_path / 'kd_no_droppath.py'
    cfg.write_text(f"_base_ = ['{ROOT}/{KD_CFG}']\n"
                   f"model = dict(student=dict(_delete_=True, **{student.to_dict()!r}))\n"
                   # no random flips: a resumed run's workers would draw other ones
                   "train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))\n")
    deterministic = [f'model.teacher_ckpt={cnn_teacher}/epoch_2.pth', 'param_scheduler=None',
                     'randomness.seed=0', 'randomness.deterministic=True',
                     'train_dataloader.dataset.indices=640',
                     'train_cfg.val_interval=10']
    straight, halves = tmp_path / 'straight', tmp_path / 'halves'
    train(str(cfg), straight, *deterministic, 'train_cfg.max_epochs=2')
    train(str(cfg), halves, *deterministic, 'train_cfg.max_epochs=1')
    proc = train(str(cfg), halves, *deterministic, 'train_cfg.max_epochs=2', extra=['--resume'])
    assert 'resumed epoch: 1' in (proc.stdout + proc.stderr).lower()
    ckpt = torch.load(halves / 'epoch_2.pth')
    assert ckpt['meta']['epoch'] == 2 and ckpt['optimizer']['state']
    assert _same_params(straight / 'epoch_2.pth', halves / 'epoch_2.pth') == []


def test_dist_train_two_cpu_processes(cnn_teacher, tmp_path):
    run_tool(['bash', 'tools/dist_train.sh', KD_CFG, '2', '--work-dir', str(tmp_path),
              '--cfg-options', 'train_dataloader.dataset.indices=256',
              'train_dataloader.batch_size=32', 'train_dataloader.num_workers=0',
              'train_dataloader.persistent_workers=False', 'val_dataloader.dataset.indices=128',
              'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
              'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
              f'model.teacher_ckpt={cnn_teacher}/epoch_2.pth'],
             env=dict(PYTHON=PY, PORT='29517'))
    log = open(next(tmp_path.glob('*/*.log'))).read()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # world size 2
    assert 'Epoch(train) [1][4/4]' in log  # 256 images / (2 processes x 32): the data is split
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    assert [r for r in scalars(tmp_path) if 'loss_kd' in r]


def test_export_round_trip(cnn_teacher, tmp_path):
    work = tmp_path / 'kd'
    train(KD_CFG, work, *ONE_EPOCH, 'train_dataloader.dataset.indices=256',
          f'model.teacher_ckpt={cnn_teacher}/epoch_2.pth')
    cls_out, bb_out = tmp_path / 'student.pth', tmp_path / 'backbone.pth'
    run_tool([PY, 'tools/model_converters/extract_student.py', str(work / 'epoch_1.pth'),
              '--classifier', str(cls_out), '--backbone', str(bb_out)])

    from mmkd.registry import MODELS
    cfg = Config.fromfile(KD_CFG)
    cfg.model.teacher_ckpt = f'{cnn_teacher}/epoch_2.pth'
    distiller = MODELS.build(cfg.model)
    distiller.load_state_dict(torch.load(work / 'epoch_1.pth')['state_dict'])
    distiller.eval()
    student = MODELS.build(Config.fromfile(osp.join(ROOT, cfg.model.student)).model).eval()
    student.load_state_dict(torch.load(cls_out)['state_dict'], strict=True)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(student(x, mode='tensor'), distiller(x, mode='tensor'))
    bb = torch.load(bb_out)['state_dict']
    missing, unexpected = student.backbone.load_state_dict(bb, strict=True)
    assert not missing and not unexpected
    assert not [k for k in torch.load(cls_out)['state_dict'] if 'distill_losses' in k]
