"""The composed Fashion-MNIST dense set (mmkd/datasets/compose.py, docs/composed_fmnist.md): COCO
and semantic labels agree with each other and with the pasted real pixels; deterministic,
reused when up to date; read by mmdet's CocoDataset and mmseg's BaseSegDataset."""
import gzip
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from conftest import FMNIST, ROOT
from mmkd.datasets import compose as C

pytestmark = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared: run tools/setup_env.sh')

SMALL = dict(train_images=20, val_images=10)


def idx_array(name):
    """An IDX file read independently of the module: 16-byte header for images, 8 for labels."""
    path = osp.join(FMNIST, name)
    if 'images' in name:
        return np.fromfile(path, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.fromfile(path, np.uint8, offset=8)


def tree(root):
    """Relative path -> bytes of every file (the link target of every symlink)."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = osp.join(d, f)
            out[osp.relpath(p, root)] = (('link', os.readlink(p)) if osp.islink(p)
                                         else open(p, 'rb').read())
    return out


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('composed') / 'set')
    C.ensure_composed(out, **SMALL)
    return out


def test_layout_and_meta(small_set):
    meta = C.read_meta(small_set)
    assert meta['counts']['train']['images'] == 20 and meta['counts']['val']['images'] == 10
    for split, n in (('train', 20), ('val', 10)):
        for d in (split, f'img_dir/{split}', f'ann_dir/{split}'):
            assert sorted(os.listdir(osp.join(small_set, d))) == [f'{i:06d}.png' for i in range(n)]
        link = osp.join(small_set, 'img_dir', split, '000000.png')
        assert os.readlink(link) == f'../../{split}/000000.png'  # relative: the set can move
        img = cv2.imread(link, cv2.IMREAD_UNCHANGED)
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert (img[..., 0] == img[..., 1]).all() and (img[..., 0] == img[..., 2]).all()
        seg = cv2.imread(osp.join(small_set, 'ann_dir', split, '000000.png'), cv2.IMREAD_UNCHANGED)
        assert seg.shape == (128, 128) and seg.dtype == np.uint8 and seg.max() <= 10


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_instances_agree_with_masks_and_semantic_map(small_set, split):
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO
    coco = COCO(osp.join(small_set, 'annotations', f'instances_{split}.json'))
    assert [(c['id'], c['name']) for c in coco.loadCats(coco.getCatIds())] == \
        list(zip(range(1, 11), C.CLASSES))
    assert len(coco.getImgIds()) == C.read_meta(small_set)['counts'][split]['images']
    num_instances = 0
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        seg = cv2.imread(osp.join(small_set, 'ann_dir', split, info['file_name']),
                         cv2.IMREAD_UNCHANGED)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert 1 <= len(anns) <= 5
        union = np.zeros((info['height'], info['width']), np.int64)
        for a in anns:
            m = coco.annToMask(a).astype(bool)
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            tight = [cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]]
            assert a['bbox'] == tight == list(mask_util.toBbox(a['segmentation']))
            assert a['area'] == m.sum() == mask_util.area(a['segmentation']) >= 30
            assert a['iscrowd'] == 0 and 1 <= a['category_id'] <= 10
            assert (seg[m] == a['category_id']).all()
            union += m
        assert union.max() <= 1, 'instance masks of one image overlap'
        assert (seg[union == 0] == 0).all(), 'semantic class outside every instance'
        num_instances += len(anns)
    assert num_instances == C.read_meta(small_set)['counts'][split]['instances']


@pytest.mark.parametrize('split', ['train', 'val'])
def test_items_are_the_real_fashion_mnist_pixels(small_set, split):
    from pycocotools import mask as mask_util
    prefix = 'train' if split == 'train' else 't10k'  # val items come from the test split only
    images = idx_array(f'{prefix}-images-idx3-ubyte')
    labels = idx_array(f'{prefix}-labels-idx1-ubyte')
    with open(osp.join(small_set, 'annotations', f'instances_{split}.json')) as f:
        coco = json.load(f)
    by_image = {}
    for a in coco['annotations']:
        by_image.setdefault(a['image_id'], []).append(a)
    sides, bright, total, occluded = set(), 0, 0, 0
    for a in coco['annotations']:
        src = a['source']
        assert src['split'] == prefix and labels[src['index']] + 1 == a['category_id']
        canvas, _, _ = C.load_sample(small_set, split, a['image_id'] - 1)
        rr, cc = np.nonzero(mask_util.decode(a['segmentation']))
        s, (ox, oy) = src['side'], src['offset']
        item = cv2.resize(images[src['index']], (s, s), interpolation=cv2.INTER_LINEAR)
        assert (rr - oy).min() >= 0 and (rr - oy).max() < s and (cc - ox).min() >= 0 \
            and (cc - ox).max() < s
        np.testing.assert_array_equal(canvas[rr, cc], item[rr - oy, cc - ox])
        # Silhouette = pixels > 20; only the small filled holes are darker.
        assert (canvas[rr, cc] > 20).mean() > 0.85
        bright += (canvas[rr, cc] > 20).sum()
        total += len(rr)
        sides.add(s)
        # Occlusion: the parts of the item's silhouette missing from its mask lie under items
        # pasted later (higher annotation ids) on the same canvas.
        later = np.zeros(canvas.shape, bool)
        for b in by_image[a['image_id']]:
            if b['id'] > a['id']:
                later |= mask_util.decode(b['segmentation']).astype(bool)
        sil = np.zeros(canvas.shape, bool)
        ys, xs = np.nonzero(item > 20)
        inside = (ys + oy >= 0) & (ys + oy < canvas.shape[0]) & (xs + ox >= 0) & \
            (xs + ox < canvas.shape[1])
        sil[ys[inside] + oy, xs[inside] + ox] = True
        mask = mask_util.decode(a['segmentation']).astype(bool)
        hidden = sil & ~mask
        assert (later[hidden]).all() and not (later & mask).any()
        occluded += hidden.any()
    assert bright / total > 0.98
    assert occluded >= 2, 'no occlusion in the set: the test would not check it'
    assert min(sides) >= 28 and max(sides) <= 64 and len(sides) > 5


def test_background_is_low_noise(small_set):
    canvas, anns, seg = C.load_sample(small_set, 'val', 0)
    assert canvas[seg == 0].max() <= 16 and canvas[seg == 0].std() > 1


def test_deterministic_prefix_stable_and_seeded(small_set, tmp_path):
    again = str(tmp_path / 'again')
    C.ensure_composed(again, **SMALL)
    assert tree(again) == tree(small_set), 'same seed, different bytes'

    other = str(tmp_path / 'seed1')
    C.ensure_composed(other, **SMALL, seed=1)
    a, b = tree(small_set), tree(other)
    assert a.keys() == b.keys()
    assert a['annotations/instances_train.json'] != b['annotations/instances_train.json']
    assert sum(a[k] != b[k] for k in a if k.startswith('train/')) == 20

    # Canvas i depends on (seed, split, i) only: a smaller set is a prefix of a larger one.
    fewer = str(tmp_path / 'fewer')
    C.ensure_composed(fewer, train_images=5, val_images=2)
    f = tree(fewer)
    assert all(f[k] == a[k] for k in f if k.startswith(('train/', 'val/', 'ann_dir/')))


def test_reused_when_up_to_date_rewritten_otherwise(tmp_path, monkeypatch):
    out = str(tmp_path / 'set')
    C.ensure_composed(out, **SMALL)
    with monkeypatch.context() as m:
        m.setattr(C, 'compose', lambda *a, **k: pytest.fail('remade an up-to-date set'))
        assert C.ensure_composed(out, **SMALL)['counts']['val']['images'] == 10
    C.ensure_composed(out, train_images=20, val_images=4)  # other arguments: rewritten
    assert C.read_meta(out)['config']['val_images'] == 4
    assert sorted(os.listdir(osp.join(out, 'val'))) == [f'{i:06d}.png' for i in range(4)]
    assert len(json.load(open(osp.join(out, 'annotations', 'instances_val.json')))['images']) == 4
    assert not [p for p in os.listdir(tmp_path) if '.tmp-' in p]

    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not a composed set'):
        C.ensure_composed(str(foreign), **SMALL)
    assert (foreign / 'keep.txt').read_text() == 'mine'


def _tool():
    spec = importlib.util.spec_from_file_location(
        'compose_fmnist_tool', osp.join(ROOT, 'tools', 'dataset_converters', 'compose_fmnist.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_missing_idx_file_is_named(tmp_path):
    root = tmp_path / 'idx'
    root.mkdir()
    for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte'):
        os.symlink(osp.join(FMNIST, name), root / name)
    with pytest.raises(FileNotFoundError, match=r't10k-labels-idx1-ubyte \(or .*\.gz\) in'):
        C.ensure_composed(str(tmp_path / 'out'), data_root=str(root), **SMALL)
    assert not osp.exists(tmp_path / 'out')
    with pytest.raises(SystemExit, match='missing MNIST-format file t10k-labels-idx1-ubyte'):
        _tool().main(['--data-root', str(root), '--out', str(tmp_path / 'out')])


def test_gzip_input_and_cli(tmp_path, capsys):
    """A small gzip MNIST-format root (the first 300 items of each split) through the CLI."""
    root = tmp_path / 'gz'
    root.mkdir()
    for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                 't10k-labels-idx1-ubyte'):
        x = idx_array(name)[:300]
        header = bytes([0, 0, 8, x.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in x.shape)
        with gzip.open(root / f'{name}.gz', 'wb') as f:
            f.write(header + x.tobytes())
    out = str(tmp_path / 'out')
    args = ['--data-root', str(root), '--out', out, '--train-images', '6', '--val-images', '3',
            '--items-per-image', '1-2', '--scale', '30..40', '--canvas', '96', '--noise', '0']
    _tool().main(args)
    assert 'wrote' in capsys.readouterr().out
    meta = C.read_meta(out)
    assert meta['config']['items'] == [1, 2] and meta['config']['scale'] == [30, 40]
    with open(osp.join(out, 'annotations', 'instances_train.json')) as f:
        anns = json.load(f)['annotations']
    assert all(a['source']['index'] < 300 and 30 <= a['source']['side'] <= 40 for a in anns)
    canvas, _, seg = C.load_sample(out, 'train', 0)
    assert canvas.shape == (96, 96) and (canvas[seg == 0] == 0).all()  # black background
    _tool().main(args)
    assert 'up to date' in capsys.readouterr().out


def test_mmdet_coco_dataset_reads_it(small_set):
    pytest.importorskip('mmdet')
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations
    from pycocotools import mask as mask_util
    for split, n in (('train', 20), ('val', 10)):
        cfg = C.coco_dataset_cfg(small_set, split)
        cfg.pop('type')
        ds = CocoDataset(**cfg, pipeline=[])
        assert len(ds) == n and ds.metainfo['classes'] == C.CLASSES
        info = ds.get_data_info(0)
        assert osp.isfile(info['img_path']) and (info['height'], info['width']) == (128, 128)
        with open(osp.join(small_set, 'annotations', f'instances_{split}.json')) as f:
            anns = [a for a in json.load(f)['annotations'] if a['image_id'] == info['img_id']]
        assert len(info['instances']) == len(anns)
        for inst, a in zip(info['instances'], anns):
            x, y, w, h = a['bbox']
            assert inst['bbox'] == [x, y, x + w, y + h] and inst['ignore_flag'] == 0
            assert inst['bbox_label'] == a['category_id'] - 1
        loaded = LoadAnnotations(with_bbox=True, with_label=True, with_mask=True)(
            LoadImageFromFile()(dict(info)))
        assert loaded['img'].shape == (128, 128, 3)
        masks = loaded['gt_masks'].to_ndarray()
        for m, a in zip(masks, anns):
            np.testing.assert_array_equal(m, mask_util.decode(a['segmentation']))


def test_mmseg_base_seg_dataset_reads_it(small_set):
    pytest.importorskip('mmseg')
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets import BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations
    for split, n in (('train', 20), ('val', 10)):
        cfg = C.seg_dataset_cfg(small_set, split)
        cfg.pop('type')
        ds = BaseSegDataset(**cfg, pipeline=[])
        assert len(ds) == n and len(ds.metainfo['classes']) == 11
        info = ds.get_data_info(3)
        assert info['img_path'].endswith(f'img_dir/{split}/000003.png')
        assert info['seg_map_path'].endswith(f'ann_dir/{split}/000003.png')
        assert info['reduce_zero_label'] is False and info['label_map'] is None
        sample = LoadAnnotations()(LoadImageFromFile()(dict(info)))
        canvas, _, seg = C.load_sample(small_set, split, 3)
        np.testing.assert_array_equal(sample['gt_seg_map'], seg)
        np.testing.assert_array_equal(sample['img'][..., 0], canvas)


def test_bad_config_rejected():
    with pytest.raises(ValueError, match='scale'):
        C.ComposeConfig(canvas=32, scale=(28, 64))
    with pytest.raises(ValueError, match='items'):
        C.ComposeConfig(items=(3, 2))
    with pytest.raises(TypeError, match='unknown ComposeConfig fields'):
        C.ensure_composed('unused', train_imgs=3)
