"""extract_student also writes the student's own mmpretrain config: ``tools/test.py`` and
mmpretrain's ``ImageClassificationInferencer`` run the exported student with no hand-written
config, and give exactly the predictions of the distiller's student (64 real Fashion-MNIST
test images; nothing is trained)."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

import mmkd  # noqa: F401
from mmkd.apis import extract_student
from mmkd.registry import DATASETS, MODELS
from conftest import FMNIST
from tools_helpers import PY, run_tool

KD = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'  # plain mmpretrain student
CSKD = 'configs/cskd/deit-small_resnet-small_1xb128_fmnist.py'  # mmkd head + mmkd metric
N = 64

pytestmark = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 't10k-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared (tools/setup_env.sh)')


def distillation_checkpoint(config, teacher_ckpt, path, with_cfg=True):
    """A checkpoint as the runner writes it (``meta.cfg``: the config text), of a distiller
    whose student is not a fresh initialisation."""
    cfg = Config.fromfile(config)
    model_cfg = cfg.model.copy()
    model_cfg.teacher_ckpt = teacher_ckpt
    model_cfg.data_preprocessor = cfg.data_preprocessor
    distiller = MODELS.build(model_cfg)
    torch.manual_seed(0)
    distiller.student.init_weights()
    with torch.no_grad():
        for p in distiller.student.parameters():  # spread the predictions over the classes
            p.add_(0.05 * torch.randn_like(p))
    meta = dict(epoch=1, cfg=cfg.pretty_text) if with_cfg else dict(epoch=1)
    torch.save(dict(meta=meta, state_dict=distiller.state_dict()), path)
    return cfg, distiller.eval()


def fmnist_images(cfg):
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg.indices = N
    return DATASETS.build(dataset_cfg)


def reference(distiller, dataset):
    """The distiller's student on the images: pred scores and top-1 accuracy (in %)."""
    with torch.no_grad():
        preds = distiller.test_step(pseudo_collate([dataset[i] for i in range(N)]))
    scores = torch.stack([p.pred_score for p in preds])
    labels = torch.cat([p.gt_label for p in preds])
    acc = 100 * (scores.argmax(1) == labels).float().mean().item()
    return scores, labels, acc


def run_test_tool(config, ckpt, work_dir):
    out = work_dir / 'metrics.json'
    run_tool([PY, 'tools/test.py', str(config), str(ckpt), '--work-dir', str(work_dir),
              '--out', str(out), '--cfg-options', f'test_dataloader.dataset.indices={N}'],
             env=dict(OMP_NUM_THREADS='1'))
    return json.loads(out.read_text())


def inferencer_scores(config, ckpt, dataset):
    from mmpretrain import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(str(config), pretrained=str(ckpt), device='cpu')
    images = [dataset.get_data_info(i)['img'] for i in range(N)]  # (28, 28) uint8 arrays
    results = inferencer(images, batch_size=16)
    return torch.stack([torch.as_tensor(r['pred_scores']) for r in results])


@pytest.mark.slow
@pytest.mark.parametrize('config', [KD, CSKD])
def test_exported_student_runs_in_test_tool_and_inferencer(config, teacher_ckpt, tmp_path):
    ckpt = tmp_path / 'distill.pth'
    cfg, distiller = distillation_checkpoint(config, teacher_ckpt, ckpt)
    cls_out = tmp_path / 'export' / 'student.pth'
    run_tool([PY, 'tools/model_converters/extract_student.py', str(ckpt),
              '--classifier', str(cls_out)])
    exported = cls_out.with_suffix('.py')
    assert exported.is_file()
    text = exported.read_text()
    assert "type='ImageClassifier'" in text and 'teacher' not in text.split('\n', 3)[-1]
    if config == CSKD:  # the student's own mmkd types, reachable from mmpretrain's scope
        assert "type='mmkd.CSKDClsHead'" in text and "imports=[\n        'mmkd'," in text

    dataset = fmnist_images(cfg)
    ref_scores, labels, ref_acc = reference(distiller, dataset)
    assert len(set(ref_scores.argmax(1).tolist())) > 1  # not a constant prediction

    metrics = run_test_tool(exported, cls_out, tmp_path / 'test')
    assert metrics['accuracy/top1'] == pytest.approx(ref_acc, abs=1e-6)
    if config == CSKD:  # the student's patch-token ensemble metric came along
        assert 'ensemble/accuracy/top1' in metrics

    scores = inferencer_scores(exported, cls_out, dataset)
    torch.testing.assert_close(scores, ref_scores, rtol=1e-5, atol=1e-6)
    acc = 100 * (scores.argmax(1) == labels).float().mean().item()
    assert acc == pytest.approx(ref_acc, abs=1e-6)


def test_teacher_and_distiller_metrics_are_dropped(teacher_ckpt, tmp_path):
    ckpt = tmp_path / 'distill.pth'
    cfg, _ = distillation_checkpoint(KD, teacher_ckpt, ckpt, with_cfg=False)
    cfg.test_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='TeacherMetric'),
                          dict(type='PredFieldMetric', field='noisy',
                               metric=dict(type='Accuracy', topk=(1, )))]
    cfg.val_evaluator = dict(type='TeacherMetric')
    out = tmp_path / 'student.pth'
    extract_student(str(ckpt), str(out), config=cfg)
    exported = Config.fromfile(str(tmp_path / 'student.py'))
    assert exported.test_evaluator == [dict(type='Accuracy', topk=(1, ))]
    assert exported.val_evaluator == [dict(type='Accuracy', topk=(1, ))]  # a fallback
    assert exported.default_scope == 'mmpretrain' and 'custom_imports' not in exported
    assert exported.load_from == str(out)
    assert exported.model.data_preprocessor.mean == [72.94]  # the run's normalisation


def test_no_config_warns_and_writes_checkpoint_only(teacher_ckpt, tmp_path):
    ckpt = tmp_path / 'distill.pth'
    distillation_checkpoint(KD, teacher_ckpt, ckpt, with_cfg=False)
    out = tmp_path / 'student.pth'
    with pytest.warns(UserWarning, match=r"stores no config.*student\.py' not written.*--config"):
        extract_student(str(ckpt), str(out))
    assert out.is_file() and not (tmp_path / 'student.py').exists()
    with pytest.raises(FileNotFoundError, match="distillation config 'nope.py' does not exist"):
        extract_student(str(ckpt), str(out), config='nope.py')
