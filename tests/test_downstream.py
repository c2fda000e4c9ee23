"""From a distillation checkpoint to Mask R-CNN (COCO format) and UPerNet (ADE20K format).

A tiny ResNet and a tiny ViT (patch 16) student are distilled for a few iterations, exported by
tools/model_converters/extract_student.py, and fine-tuned for a few iterations on CPU through
tools/train.py with small configs inheriting from configs/downstream/, on COCO- and
ADE20K-format sets generated here; their evaluations (bbox/segm mAP, mIoU) run. The backbone
equals the exported student at the start of fine-tuning and a mismatched checkpoint is an error
naming the keys (the full-size configs build and run one loss step in test_configs.py).
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

import mmkd  # noqa: F401
import mmkd.downstream  # noqa: F401
from conftest import ROOT, runner_from_cfg
from mmkd.downstream import CheckpointMismatchError
from tools_helpers import PY, run_tool, scalars

torch.set_num_threads(1)  # 2 shared cores: the subprocess runs below get the other one
ONE_THREAD = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

CLASSES = ('square', 'blob', 'bar')
DET_SIZE = 96  # px, generated COCO images
SEG_SIZE = 64  # px, generated ADE20K images

# tiny students, standard layouts: a 7x7-stem ResNet-18 (4 stages, 16..128 channels) and a ViT
# with 16 px patches (32-d, 4 blocks) pre-trained at 64 px
RESNET = dict(type='ResNet', depth=18, in_channels=3, stem_channels=16, base_channels=16,
              out_indices=(3, ))
VIT_ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
VIT = dict(type='VisionTransformer', arch=VIT_ARCH, img_size=64, patch_size=16, in_channels=3)
STUDENTS = dict(
    resnet=dict(type='ImageClassifier', backbone=RESNET, neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=4, in_channels=128)),
    vit=dict(type='ImageClassifier', backbone=VIT,
             head=dict(type='VisionTransformerClsHead', num_classes=4, in_channels=32)))
TEACHER = dict(type='ImageClassifier',
               backbone=dict(RESNET, stem_channels=8, base_channels=8),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=4, in_channels=64))
PREPROCESS = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)


# ---------------------------------------------------------------- data sets, generated
def _polygon(x, y, w, h, kind):
    if kind == 1:  # a diamond: a non-rectangular mask inside its box
        return [x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h, x, y + h / 2]
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def make_coco(root, n_train=6, n_val=2, seed=0):
    """COCO instance set: images with 1-3 coloured shapes, boxes + polygons, 3 categories."""
    rng = np.random.default_rng(seed)
    colours = [(230, 40, 40), (40, 200, 40), (40, 40, 230)]
    for split, n in (('train', n_train), ('val', n_val)):
        images, anns = [], []
        (root / split).mkdir(parents=True)
        for i in range(n):
            img = np.full((DET_SIZE, DET_SIZE, 3), 110, np.uint8)
            img += rng.integers(0, 20, img.shape, dtype=np.uint8)
            for _ in range(int(rng.integers(1, 4))):
                cat = int(rng.integers(0, 3))
                w, h = (int(v) for v in rng.integers(20, 44, 2))
                x, y = (int(v) for v in rng.integers(0, DET_SIZE - 44, 2))
                poly = _polygon(x, y, w, h, cat)
                if cat == 1:  # a plus-shaped blob, roughly its diamond polygon
                    img[y + h // 4:y + 3 * h // 4, x:x + w] = colours[cat]
                    img[y:y + h, x + w // 4:x + 3 * w // 4] = colours[cat]
                else:
                    img[y:y + h, x:x + w] = colours[cat]
                anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=cat + 1,
                                 bbox=[x, y, w, h], area=float(w * h if cat != 1 else w * h / 2),
                                 segmentation=[poly], iscrowd=0))
            name = f'{split}_{i}.jpg'
            Image.fromarray(img).save(root / split / name)
            images.append(dict(id=i + 1, file_name=name, width=DET_SIZE, height=DET_SIZE))
        cats = [dict(id=k + 1, name=c) for k, c in enumerate(CLASSES)]
        (root / f'{split}.json').write_text(json.dumps(dict(images=images, annotations=anns,
                                                            categories=cats)))
    return root


def make_ade20k(root, n_train=4, n_val=2, seed=0):
    """ADE20K layout: images/{training,validation}/*.jpg, annotations/.../*.png; label 0 is
    'other' (ignored by reduce_zero_label), objects use labels 1-3 of the 150."""
    rng = np.random.default_rng(seed)
    for split, n in (('training', n_train), ('validation', n_val)):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(n):
            img = np.full((SEG_SIZE, SEG_SIZE, 3), 100, np.uint8)
            label = np.zeros((SEG_SIZE, SEG_SIZE), np.uint8)
            label[SEG_SIZE // 2:] = 1  # 'wall'-like lower half
            img[SEG_SIZE // 2:] = (150, 120, 90)
            for cls in (2, 3):
                x, y = (int(v) for v in rng.integers(0, SEG_SIZE - 24, 2))
                label[y:y + 20, x:x + 20] = cls
                img[y:y + 20, x:x + 20] = (60 * cls, 30, 200 - 50 * cls)
            Image.fromarray(img).save(root / 'images' / split / f'ADE_{split}_{i:08d}.jpg')
            Image.fromarray(label).save(root / 'annotations' / split / f'ADE_{split}_{i:08d}.png')
    return root


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('downstream_data')
    return dict(coco=make_coco(root / 'coco'), ade=make_ade20k(root / 'ade'))


# ---------------------------------------------------------------- distil + export
def _distil(kind, teacher_ckpt, out, iters=3):
    """A few real distillation iterations (KD on logits) of a tiny student; saved as a runner
    checkpoint. 3-channel 64 px images: the students' downstream input format."""
    from mmengine.optim import OptimWrapper
    from mmpretrain.structures import DataSample

    from mmkd.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ClassificationDistiller', student=STUDENTS[kind], teacher=TEACHER,
        teacher_ckpt=teacher_ckpt, data_preprocessor=PREPROCESS,
        distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0, loss_weight=1.0))))
    model.init_weights()
    optim = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.05, momentum=0.9))
    g = torch.Generator().manual_seed(1)
    for _ in range(iters):
        batch = dict(inputs=[torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)
                             for _ in range(4)],
                     data_samples=[DataSample().set_gt_label(int(torch.randint(0, 4, (1, ), generator=g)))
                                   for _ in range(4)])
        losses = model.train_step(batch, optim)
        assert torch.isfinite(losses['loss']) and 'loss_kd' in losses
    torch.save(dict(meta=dict(iter=iters), state_dict=model.state_dict()), out)
    return model


@pytest.fixture(scope='module')
def students(tmp_path_factory):
    """{'resnet'|'vit': exported backbone checkpoint path}, through extract_student.py."""
    from mmkd.registry import MODELS
    root = tmp_path_factory.mktemp('students')
    torch.manual_seed(0)
    teacher = MODELS.build(dict(TEACHER, data_preprocessor=dict(type='ClsDataPreprocessor',
                                                                **PREPROCESS)))
    teacher.init_weights()
    teacher_ckpt = str(root / 'teacher.pth')
    torch.save(dict(meta=dict(), state_dict=teacher.state_dict()), teacher_ckpt)
    out = {}
    for kind in STUDENTS:
        distill = root / f'{kind}_distill.pth'
        model = _distil(kind, teacher_ckpt, distill)
        out[kind] = root / f'{kind}_backbone.pth'
        run_tool([PY, 'tools/model_converters/extract_student.py', str(distill),
                  '--backbone', str(out[kind])], env=ONE_THREAD)
        exported = torch.load(out[kind])['state_dict']
        assert exported.keys() == model.student.backbone.state_dict().keys()
    return out


# ---------------------------------------------------------------- small fine-tuning configs
def _iter_run(val_metric_key=None):
    # a few iterations, then one evaluation; no epoch-based schedulers of the full recipes
    return ("train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, "
            "val_interval=4)\n"
            "param_scheduler = []\n"
            "default_hooks = dict(logger=dict(interval=1), "
            "checkpoint=dict(by_epoch=False, interval=4))\n"
            "log_processor = dict(by_epoch=False)\n"
            "randomness = dict(seed=0)\n")


def _det_data(coco):
    pipe_train = ("[dict(type='LoadImageFromFile'), "
                  "dict(type='LoadAnnotations', with_bbox=True, with_mask=True), "
                  "dict(type='Resize', scale=(128, 128), keep_ratio=True), "
                  "dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]")
    pipe_test = ("[dict(type='LoadImageFromFile'), "
                 "dict(type='Resize', scale=(128, 128), keep_ratio=True), "
                 "dict(type='LoadAnnotations', with_bbox=True, with_mask=True), "
                 "dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', "
                 "'img_shape', 'scale_factor'))]")
    ds = (f"dict(_delete_=True, type='CocoDataset', data_root='{coco}/', "
          f"metainfo=dict(classes={CLASSES!r}), ")
    return (
        f"train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, "
        f"dataset={ds}ann_file='train.json', data_prefix=dict(img='train/'), "
        f"filter_cfg=dict(filter_empty_gt=True, min_size=4), pipeline={pipe_train}))\n"
        f"val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, "
        f"dataset={ds}ann_file='val.json', data_prefix=dict(img='val/'), test_mode=True, "
        f"pipeline={pipe_test}))\n"
        "test_dataloader = val_dataloader\n"
        f"val_evaluator = dict(ann_file='{coco}/val.json', metric=['bbox', 'segm'])\n"
        "test_evaluator = val_evaluator\n"
        "optim_wrapper = dict(optimizer=dict(lr=0.002))\n")


def _det_heads(c):
    return (f"neck=dict(out_channels={c}), rpn_head=dict(in_channels={c}, feat_channels={c}), "
            f"roi_head=dict(bbox_roi_extractor=dict(out_channels={c}), "
            f"bbox_head=dict(in_channels={c}, fc_out_channels=64, num_classes=3), "
            f"mask_roi_extractor=dict(out_channels={c}), "
            f"mask_head=dict(in_channels={c}, conv_out_channels={c}, num_classes=3)), "
            # keep every detection: 4 iterations leave the scores low, and COCO evaluation
            # reports nothing for an empty result
            "test_cfg=dict(rcnn=dict(score_thr=0.0))")


def _seg_data(ade):
    pipe_train = ("[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', "
                  "reduce_zero_label=True), dict(type='Resize', scale=(64, 64), keep_ratio=False), "
                  "dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]")
    pipe_test = ("[dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64), "
                 "keep_ratio=False), dict(type='LoadAnnotations', reduce_zero_label=True), "
                 "dict(type='PackSegInputs')]")
    return (
        "crop_size = (64, 64)\n"
        f"train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, "
        f"dataset=dict(data_root='{ade}', pipeline={pipe_train}))\n"
        f"val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, "
        f"dataset=dict(data_root='{ade}', pipeline={pipe_test}))\n"
        "test_dataloader = val_dataloader\n")


def downstream_config(task, kind, tmp_path, data, backbone_ckpt):
    """A small config inheriting from the real configs/downstream/ one, shrunk to fit the tiny
    exported backbone; written to tmp_path. Returns its path."""
    c = 32
    if task == 'det':
        base = dict(resnet='mask-rcnn_r18-student_fpn_1x_coco.py',
                    vit='mask-rcnn_deit-t-student_simple-fpn_lsj-100e_coco.py')[kind]
        if kind == 'resnet':
            model = (f"model = dict(backbone=dict(stem_channels=16, base_channels=16, "
                     f"init_cfg=dict(type='StrictPretrained', checkpoint='{backbone_ckpt}')), "
                     + _det_heads(c).replace('neck=dict(', 'neck=dict(in_channels=[16, 32, 64, 128], ')
                     + ")\n")
        else:
            model = (f"model = dict(data_preprocessor=dict(batch_augments=[dict("
                     f"type='BatchFixedSizePad', size=(128, 128), pad_mask=True)]), "
                     f"backbone=dict(arch=dict(_delete_=True, **{VIT_ARCH!r}), img_size=64, "
                     f"init_cfg=dict(type='StrictPretrained', checkpoint='{backbone_ckpt}')), "
                     + _det_heads(c).replace('neck=dict(', 'neck=dict(in_channels=32, ')
                       .replace('bbox_head=dict(', f'bbox_head=dict(conv_out_channels={c}, ')
                     + ")\n")
        body = model + _det_data(data['coco'])
    else:
        base = dict(resnet='upernet_r18-student_4xb4-160k_ade20k-512x512.py',
                    vit='upernet_deit-t-student_mln_8xb2-160k_ade20k-512x512.py')[kind]
        if kind == 'resnet':
            backbone = "stem_channels=16, base_channels=16, "
            dec, aux = '[16, 32, 64, 128]', 64
        else:
            backbone = (f"arch=dict(_delete_=True, **{VIT_ARCH!r}), img_size=64, "
                        "out_indices=(0, 1, 2, 3), ")
            dec, aux = '[32, 32, 32, 32]', 32
        neck = ("neck=dict(in_channels=[32, 32, 32, 32], out_channels=32), "
                if kind == 'vit' else '')
        body = (f"model = dict(data_preprocessor=dict(size=(64, 64)), backbone=dict({backbone}"
                f"init_cfg=dict(type='StrictPretrained', checkpoint='{backbone_ckpt}')), {neck}"
                f"decode_head=dict(in_channels={dec}, channels={c}), "
                f"auxiliary_head=dict(in_channels={aux}, channels=16))\n" + _seg_data(data['ade']))
    path = tmp_path / f'{task}_{kind}.py'
    path.write_text(f"_base_ = ['{ROOT}/configs/downstream/{base}']\n" + body + _iter_run())
    return str(path)


def _backbone_at_start(config, work_dir):
    """The backbone state after the runner's own weight init (what iteration 0 trains from)."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    runner = runner_from_cfg(cfg)
    runner.model.init_weights()  # what Runner.train() does before the first iteration
    return runner.model.backbone.state_dict()


CASES = [('det', 'resnet'), ('det', 'vit'), ('seg', 'vit'), ('seg', 'resnet')]


@pytest.mark.slow
@pytest.mark.parametrize('task,kind', CASES)
def test_finetune_from_exported_student(task, kind, data, students, tmp_path):
    config = downstream_config(task, kind, tmp_path, data, students[kind])
    exported = torch.load(students[kind])['state_dict']

    start = _backbone_at_start(config, tmp_path / 'init')
    assert start.keys() == exported.keys()
    different = [k for k in exported if not torch.equal(start[k], exported[k])]
    assert not different, f'backbone differs from the exported student at start: {different}'

    work = tmp_path / 'run'
    proc = run_tool([PY, 'tools/train.py', config, '--work-dir', str(work)], env=ONE_THREAD)
    log = proc.stdout + proc.stderr
    assert f"loaded all {len(exported)} tensors" in log and str(students[kind]) in log
    records = scalars(work)
    assert [r for r in records if 'loss' in r and np.isfinite(r['loss'])]
    metric_key = 'coco/bbox_mAP' if task == 'det' else 'mIoU'
    evaluated = [r for r in records if metric_key in r]
    assert len(evaluated) == 1, records[-3:]
    final = evaluated[0]
    if task == 'det':
        # 4 iterations from a tiny student: any value is fine, -1 (no predictions) too; that
        # the keys are there shows COCO bbox and segm evaluation ran on the val set
        for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP_50'):
            assert key in final and -1.0 <= final[key] <= 1.0, (key, final)
    else:
        assert 0.0 <= final['mIoU'] <= 100.0, final
    assert osp.isfile(work / 'iter_4.pth')


@pytest.mark.slow
def test_mismatched_backbone_checkpoint_is_an_error_naming_keys(students, tmp_path):
    from mmengine.registry import DefaultScope

    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    vit, resnet = str(students['vit']), str(students['resnet'])
    with DefaultScope.overwrite_default_scope('mmdet'):
        # a wider ViT: every tensor mis-shaped
        wide = DET_MODELS.build(dict(type='PlainViT', arch=dict(VIT_ARCH, embed_dims=48),
                                     img_size=64, patch_size=16,
                                     init_cfg=dict(type='StrictPretrained', checkpoint=vit)))
        with pytest.raises(CheckpointMismatchError, match=r'mis-shaped keys.*pos_embed') as e:
            wide.init_weights()
        assert vit in str(e.value)
        # a ViT checkpoint for a ResNet: missing and unexpected keys, named
        net = DET_MODELS.build(dict(type='ResNet', depth=18, stem_channels=16, base_channels=16,
                                    init_cfg=dict(type='StrictPretrained', checkpoint=vit)))
        with pytest.raises(CheckpointMismatchError,
                           match=r'missing keys \(\d+\): conv1.weight.*unexpected keys .*cls_token'):
            net.init_weights()
    with DefaultScope.overwrite_default_scope('mmseg'):
        # a deeper ResNet: the extra blocks are missing
        deep = SEG_MODELS.build(dict(type='ResNet', depth=34, stem_channels=16, base_channels=16,
                                     deep_stem=False,
                                     init_cfg=dict(type='StrictPretrained', checkpoint=resnet)))
        with pytest.raises(CheckpointMismatchError, match=r'missing keys .*layer1\.2\.'):
            deep.init_weights()
    with pytest.raises(ValueError, match='backbone_ckpt'):
        from mmkd.downstream import StrictPretrainedInit
        StrictPretrainedInit(checkpoint=None)(torch.nn.Linear(2, 2))
