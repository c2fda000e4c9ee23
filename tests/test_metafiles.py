"""The model index: one metafile.yml per method folder of configs/ in mmpretrain's model-index
format, imported by the root model-index.yml; every listed config exists, every ImageNet (and
segmentation) config of a method folder is listed, and the Model zoo tables of the docs say what
the metafiles say."""
import glob
import os
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

from conftest import ROOT

#: folders of configs/ that hold no method's configs: shared bases, the Fashion-MNIST results
#: table and baselines (measured in docs/benchmarks.md), the downstream fine-tuning recipes
NOT_METHODS = {'_base_', 'results', 'fmnist', 'downstream'}
METHODS = sorted(d for d in os.listdir(osp.join(ROOT, 'configs'))
                 if osp.isdir(osp.join(ROOT, 'configs', d)) and d not in NOT_METHODS)
METRICS = {'Image Classification': 'Top 1 Accuracy', 'Semantic Segmentation': 'mIoU'}
NOT_REPRODUCED = re.compile(r'not reproduced here \(no [\w -]+\)')


def _load(path):
    with open(osp.join(ROOT, path), encoding='utf-8') as f:
        return yaml.safe_load(f)


def _metafile(method):
    return f'configs/{method}/metafile.yml'


def _models():
    return [(method, m) for method in METHODS for m in _load(_metafile(method))['Models']]


def test_every_method_folder_has_a_metafile_and_the_index_imports_them_all():
    assert {'kd', 'vitkd', 'cskd', 'cakd', 'tat'} <= set(METHODS)
    missing = [m for m in METHODS if not osp.isfile(osp.join(ROOT, _metafile(m)))]
    assert not missing, f'method folders without metafile.yml: {missing}'
    index = _load('model-index.yml')
    assert set(index) == {'Import'}
    assert sorted(index['Import']) == sorted(_metafile(m) for m in METHODS)


@pytest.mark.parametrize('method', METHODS)
def test_metafile_format(method):
    meta = _load(_metafile(method))
    assert set(meta) == {'Collections', 'Models'}, meta.keys()
    collections = {}
    for c in meta['Collections']:
        assert {'Name', 'Metadata', 'Paper', 'README'} <= set(c), c
        assert set(c['Paper']) == {'Title', 'URL'} and c['Paper']['URL'].startswith('https://')
        assert osp.isfile(osp.join(ROOT, c['README'])), c['README']
        collections[c['Name']] = c
    assert meta['Models']
    for m in meta['Models']:
        where = f"{_metafile(method)}: {m.get('Name')}"
        keys = {'Name', 'In Collection', 'Config', 'Metadata', 'Results', 'Weights'}
        assert keys <= set(m), where
        assert m['In Collection'] in collections, where
        assert m['Config'].startswith(f'configs/{method}/'), where
        assert osp.isfile(osp.join(ROOT, m['Config'])), f"{where}: {m['Config']} does not exist"
        assert m['Weights'] is None or m['Weights'].startswith('https://'), where
        meta_keys = {'Training Data', 'Student', 'Teacher', 'Batch Size', 'Results Source',
                     'mmkd Result'}
        assert meta_keys <= set(m['Metadata']), (where, meta_keys - set(m['Metadata']))
        assert isinstance(m['Results'], list), where
        for r in m['Results']:
            assert set(r) == {'Task', 'Dataset', 'Metrics'}, where
            metric = METRICS[r['Task']]
            assert set(r['Metrics']) == {metric}, where
            assert 0 < r['Metrics'][metric] < 100, where
        # a result or the reason there is none, and what mmkd measured (or that it did not)
        source, measured = m['Metadata']['Results Source'], m['Metadata']['mmkd Result']
        assert m['Results'] or source.startswith(('none', 'not in the sources')), where
        assert isinstance(measured, (int, float)) or NOT_REPRODUCED.fullmatch(measured), where


def test_model_names_are_unique():
    names = [m['Name'] for _, m in _models()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def _train_datasets(cfg):
    ds = cfg.train_dataloader.dataset
    stack, types = [ds], []
    while stack:
        d = stack.pop()
        types.append(d.get('type'))
        stack += [d['dataset']] if 'dataset' in d else list(d.get('datasets', []))
    return types


@pytest.mark.parametrize('method', METHODS)
def test_every_imagenet_and_segmentation_config_is_listed(method):
    listed = {m['Config']: m for m in _load(_metafile(method))['Models']}
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', method, '*.py'))):
        rel = osp.relpath(path, ROOT)
        types = _train_datasets(Config.fromfile(path))
        if 'FashionMNIST' in types:
            continue  # the CPU demos: measured (or not) in docs/benchmarks.md
        assert rel in listed, f'{rel} (train data {types}) is not in {_metafile(method)}'
        if 'ImageNet' in types:
            assert listed[rel]['Metadata']['Training Data'] == 'ImageNet-1k', rel
            assert all(r['Dataset'] == 'ImageNet-1k' for r in listed[rel]['Results']), rel


def _zoo_rows(doc):
    """``config -> (paper cell, mmkd cell)`` of the Model zoo tables of a doc."""
    with open(osp.join(ROOT, doc), encoding='utf-8') as f:
        text = f.read()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 4 and cells[0].startswith('`configs/'):
            rows[cells[0].strip('`')] = (cells[2], cells[3])
    return text, rows


@pytest.mark.parametrize('doc', ['docs/model_zoo.md', 'README of each collection'])
def test_docs_model_zoo_tables_match_the_metafiles(doc):
    for method in METHODS:
        meta = _load(_metafile(method))
        path = doc if doc.startswith('docs/') else meta['Collections'][0]['README']
        text, rows = _zoo_rows(path)
        if path != 'docs/model_zoo.md':
            assert '## Model zoo' in text, f'{path} has no Model zoo section'
        for m in meta['Models']:
            assert m['Config'] in rows, f"{m['Config']} is not in the Model zoo table of {path}"
            paper, measured = rows[m['Config']]
            if m['Results']:
                value = next(iter(m['Results'][0]['Metrics'].values()))
                number = re.match(r'\d+(\.\d+)?', paper)
                assert number and float(number.group()) == pytest.approx(value), (path, m['Name'])
            else:
                assert paper in ('none', 'not in the sources here'), (path, m['Name'], paper)
            assert measured == str(m['Metadata']['mmkd Result']), (path, m['Name'])


def test_model_index_loads_with_the_model_index_package():
    modelindex = pytest.importorskip('modelindex.load_model_index')
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        index = modelindex.load('model-index.yml')
    finally:
        os.chdir(cwd)
    assert sorted(m.name for m in index.models) == sorted(m['Name'] for _, m in _models())
    assert all(m.config and osp.isfile(osp.join(ROOT, m.config)) for m in index.models)
