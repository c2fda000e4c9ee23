"""The analysis tools (issue #11) on small models and real Fashion-MNIST images: attention maps,
feature transferability, training curves; the functions and each CLI once."""
import dataclasses
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

import mmkd  # noqa: F401
from conftest import CNN, DEIT, FMNIST, ROOT, VIT
from mmkd.analysis import attention as A
from mmkd.analysis import curves as C
from mmkd.analysis import transferability as T
from mmkd.analysis.loading import load_config, load_images, load_subjects
from mmkd.analysis.plotting import figure_size
from mmkd.models.builder import build_model

pytestmark = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 't10k-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared: run tools/setup_env.sh')

PY = sys.executable
VIT_CFG = osp.join(ROOT, 'configs', 'fmnist', 'vit-small_1xb128_fmnist.py')
CNN_CFG = osp.join(ROOT, 'configs', 'fmnist', 'resnet-small_1xb128_fmnist.py')
KD_CFG = osp.join(ROOT, 'configs', 'kd', 'vit-small_resnet-small_1xb128_fmnist.py')


def read_png(path):
    """(height, width, channels) of a PNG, checking it is one and not blank."""
    import matplotlib.image as mpimg
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n', f'{path} is not a PNG'
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img[..., :3].std() > 0.05, f'{path} looks blank'
    return img.shape


def _save(model, path, prefix=''):
    torch.save(dict(meta={}, state_dict={prefix + k: v for k, v in model.state_dict().items()}),
               path)
    return str(path)


def _scalars(run_dir, records):
    os.makedirs(osp.join(run_dir, 'vis_data'))
    with open(osp.join(run_dir, 'vis_data', 'scalars.json'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)


def _fake_run(work_dir, seed, kd=True, resumed=False):
    """scalars.json as MMEngine writes them: 4 iterations per epoch, a val record per epoch."""
    rng = np.random.default_rng(seed)
    runs = [(1, 2), (3, 4)] if resumed else [(1, 4)]
    for n, (first, last) in enumerate(runs):
        records = []
        for epoch in range(first, last + 1):
            for it in range((epoch - 1) * 4 + 1, epoch * 4 + 1):
                rec = dict(lr=1e-3, data_time=0.01, loss=2.3 - 0.1 * it + rng.random() * 0.05,
                           time=0.2, epoch=epoch, iter=it, memory=100, step=it)
                if kd:
                    rec.update(loss_cls=rec['loss'] / 2, loss_kd=rec['loss'] / 2)
                records.append(rec)
            records.append({'accuracy/top1': 40.0 + 10 * epoch + seed, 'data_time': 0.01,
                            'time': 0.1, 'step': epoch})
        _scalars(osp.join(str(work_dir), f'2026010{n + 1}_000000'), records)
    return str(work_dir)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Randomly initialised small models (independent seeds) saved as checkpoints, a ViT <- DeiT
    distillation config, scalar logs of two runs; and the three CLIs started in the background
    (they run while the in-process tests do)."""
    d = tmp_path_factory.mktemp('analysis')
    f = {'dir': d}
    for name, spec, seed in (('vit0', VIT, 0), ('vit1', VIT, 1), ('cnn0', CNN, 0),
                             ('cnn1', CNN, 1), ('deit', DEIT, 2)):
        torch.manual_seed(seed)
        f[name] = _save(build_model(spec, name), d / f'{name}.pth')
    torch.manual_seed(0)
    f['kd'] = _save(build_model(VIT, 'student'), d / 'kd_epoch_1.pth', prefix='student.')
    f['kd_cfg'] = str(d / 'kd_vit_deit.py')
    with open(f['kd_cfg'], 'w') as fh:
        fh.write(f"_base_ = ['{KD_CFG}']\n"
                 f"model = dict(teacher='{DEIT}', teacher_ckpt='{f['deit']}')\n")
    f['run_kd'] = _fake_run(d / 'vit_kd', seed=1, kd=True, resumed=True)
    f['run_alone'] = _fake_run(d / 'vit_alone', seed=2, kd=False)

    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}
    cli = {
        'attention': [PY, 'tools/analysis/attention_maps.py', f['kd_cfg'], f['kd'],
                      '--layers', '0', '-1', '--num-images', '16', '--num-show', '3',
                      '--out-dir', str(d / 'attn')],
        'transfer': [PY, 'tools/analysis/transferability.py', VIT_CFG, f['vit0'], f['kd'],
                     '--labels', 'itself', 'distilled', '--teacher', VIT,
                     '--teacher-ckpt', f['vit0'], '--fit-images', '64', '--eval-images', '32',
                     '--fit-split', 'test', '--out', str(d / 'transfer.png'),
                     '--table', str(d / 'transfer.md')],
        'curves': [PY, 'tools/analysis/plot_curves.py', f['run_alone'], f['run_kd'],
                   '--out', str(d / 'curves.png')],
    }
    f['procs'] = {k: subprocess.Popen(v, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
                  for k, v in cli.items()}
    yield f
    for p in f['procs'].values():
        if p.poll() is None:
            p.kill()
            p.wait()


def _cli(files, name, timeout=240):
    proc = files['procs'][name]
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f'{" ".join(proc.args)} failed:\n{out[-5000:]}'
    return out


@pytest.fixture(scope='module')
def images():
    return load_images(VIT_CFG, 24)  # the first 24 real Fashion-MNIST test images


# -- loading ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_loading_student_teacher_and_clear_errors(files, tmp_path):
    student, teacher = load_subjects(files['kd_cfg'], files['kd'])
    assert (student.role, teacher.role) == ('student', 'teacher')
    assert type(teacher.model.backbone).__name__ == 'DistilledVisionTransformer'
    ref = torch.load(files['vit0'])['state_dict']  # same seed as the distillation checkpoint
    assert all(torch.equal(v, ref[k]) for k, v in student.model.state_dict().items())
    # a plain classifier checkpoint is a student checkpoint too
    (plain, ) = load_subjects(files['kd_cfg'], files['vit1'], which='student')
    assert plain.role == 'student'
    (model, ) = load_subjects(CNN_CFG, files['cnn0'])
    assert model.role == 'model' and not model.model.training

    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_subjects(files['kd_cfg'], str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match=r"cnn0\.pth' does not match the student.*missing keys"):
        load_subjects(files['kd_cfg'], files['cnn0'], which='student')
    with pytest.raises(ValueError, match=r"vit0\.pth' does not match the teacher"):
        load_subjects(files['kd_cfg'], files['kd'], teacher_ckpt=files['vit0'])
    with pytest.raises(FileNotFoundError, match='work_dirs/resnet-small_1xb128_fmnist/epoch_5.pth'):
        load_subjects(KD_CFG, files['kd'], which='teacher')  # the config's default path
    with pytest.raises(ValueError, match='no teacher'):
        load_subjects(VIT_CFG, files['vit0'], which='both')
    with pytest.raises(ValueError, match='needs a checkpoint'):
        load_subjects(VIT_CFG, None)
    # a teacher trained with another normalisation sees its own (model.teacher_norm)
    _, t = load_subjects(files['kd_cfg'], files['kd'],
                         cfg_options={'model.teacher_norm': dict(mean=[0.0], std=[255.0])})
    imgs = [torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8) for _ in range(2)]
    torch.testing.assert_close(t.normalise(imgs), torch.stack(imgs).float() / 255.)
    torch.testing.assert_close(student.normalise(imgs), (torch.stack(imgs).float() - 72.94) / 90.02)

    mis = tmp_path / 'misshaped.pth'
    sd = torch.load(files['vit0'])['state_dict']
    sd['head.layers.head.weight'] = torch.zeros(5, 64)
    torch.save(dict(state_dict=sd), mis)
    with pytest.raises(ValueError, match=r'misshaped\.pth.*head\.layers\.head\.weight'):
        load_subjects(VIT_CFG, str(mis))


# -- attention --------------------------------------------------------------------------------
def test_attention_recomputed_from_qkv_is_what_the_module_computes(images):
    """softmax(QK^T / sqrt(d)) from the qkv tap, applied to V and projected, reproduces the
    attention module's own output: the maps are the weights the model really used."""
    torch.manual_seed(0)
    model = build_model(VIT, 'model').eval()
    (path, attn), = [A.attention_layers(model)[2]]
    seen = {}
    h1 = attn.register_forward_hook(lambda m, a, o: seen.update(x=a[0], out=o))
    h2 = attn.qkv.register_forward_hook(lambda m, a, o: seen.update(qkv=o))
    x = torch.stack(images.images[:4]).float() / 255.
    with torch.no_grad():
        model(x, mode='tensor')
    h1.remove(), h2.remove()
    w = A.attention_from_qkv(seen['qkv'], attn.num_heads)  # (B, heads, L, L)
    assert w.shape == (4, 4, 50, 50) and torch.allclose(w.sum(-1), torch.ones(4, 4, 50))
    B, L, _ = seen['qkv'].shape
    v = seen['qkv'].reshape(B, L, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)[2]
    out = attn.proj((w @ v).transpose(1, 2).reshape(B, L, -1))
    torch.testing.assert_close(out, seen['out'], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_attention_maps_student_teacher_side_by_side(files, images, tmp_path):
    student, teacher = load_subjects(files['kd_cfg'], files['kd'])
    res = [A.collect_attention(s, images, layers=[0, 1, -1]) for s in (student, teacher)]
    for r, extra in zip(res, (1, 2)):  # ViT: cls; DeiT: cls + distillation token
        assert r.has_attention and r.depth == 4 and r.layers == [0, 1, 3]
        assert r.num_extra == extra and r.grid == (7, 7) and r.cls_kind == 'cls'
        L = extra + 49
        assert set(r.maps) == {0, 1, 3} and r.maps[3].shape == (4, L, L)
        np.testing.assert_allclose(r.maps[3].sum(-1), 1.0, atol=1e-5)  # rows are softmaxes
        assert r.cls_maps.shape == (24, 4, 7, 7) and len(r.preds) == 24
        assert r.paths[3] == 'backbone.layers.3.attn'
    # the two independently initialised models attend differently
    assert np.abs(res[0].maps[0][:, 1:, 1:] - res[1].maps[0][:, 2:, 2:]).max() > 1e-3

    out = tmp_path / 'layers.png'
    assert A.plot_attention_layers(res, str(out)) == (3, 2)  # 3 layers x (student | teacher)
    h, w, _ = read_png(out)
    assert (w, h) == figure_size(3, 2, A.LAYER_PANEL, A.HEADER) == (600, 970)
    one_layer = [dataclasses.replace(r, layers=[3]) for r in res]
    assert A.plot_attention_layers(one_layer, str(out), per_head=True) == (1, 8)  # 4 heads each
    h, w, _ = read_png(out)
    assert (w, h) == figure_size(1, 8, A.LAYER_PANEL, A.HEADER)
    out = tmp_path / 'cls.png'
    assert A.plot_cls_attention(images, res, str(out), num_show=5) == (5, 3)
    h, w, _ = read_png(out)
    assert (w, h) == figure_size(5, 3, A.CLS_PANEL, A.HEADER) == (660, 1170)

    with pytest.raises(IndexError, match='the student has 4 attention layers'):
        A.collect_attention(student, images, layers=[4])


@pytest.mark.slow
def test_attention_cnn_gets_a_labelled_substitute(files, images, tmp_path):
    student, teacher = load_subjects(KD_CFG, files['kd'], teacher_ckpt=files['cnn0'])
    s = A.collect_attention(student, images, layers=[-1])
    t = A.collect_attention(teacher, images)
    assert not t.has_attention and t.maps == {} and t.cls_kind == 'activation'
    assert t.cls_maps.shape == (24, 1, 7, 7) and len(t.preds) == 24  # last stage: 64 x 7 x 7
    assert A.plot_attention_layers([s, t], str(tmp_path / 'l.png')) == (1, 2)
    assert A.plot_cls_attention(images, [s, t], str(tmp_path / 'c.png'), num_show=2) == (2, 3)
    read_png(tmp_path / 'l.png'), read_png(tmp_path / 'c.png')


@pytest.mark.slow
def test_attention_maps_cli(files):
    out = _cli(files, 'attention')
    d = files['dir'] / 'attn'
    assert 'attention_layers.png: 2 layer(s) x 2 column(s)' in out
    h, w, _ = read_png(d / 'attention_layers.png')
    assert (w, h) == figure_size(2, 2, A.LAYER_PANEL, A.HEADER)
    h, w, _ = read_png(d / 'cls_attention.png')
    assert (w, h) == figure_size(3, 3, A.CLS_PANEL, A.HEADER)
    assert '16/16' in out  # the progress bar ran over the images


@pytest.mark.slow
def test_attention_cli_clear_error_for_cnn_only(files, tmp_path):
    """A CNN alone has no attention: the tool stops with a message (main() in-process)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'attention_maps_cli', osp.join(ROOT, 'tools', 'analysis', 'attention_maps.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit, match='no model to analyse has attention layers'):
        cli.main([CNN_CFG, files['cnn0'], '--num-images', '2', '--num-show', '2',
                  '--out-dir', str(tmp_path)])


# -- transferability --------------------------------------------------------------------------
def test_least_squares_transferability_on_known_maps():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(300, 16, generator=g)
    w0 = torch.randn(16, 24, generator=g)
    t = s @ w0
    assert T.transferability(s[:200], t[:200], s[200:], t[200:]) == pytest.approx(1, abs=1e-9)
    noise = torch.randn(300, 24, generator=g)
    assert abs(T.transferability(s[:200], noise[:200], s[200:], noise[200:])) < 0.2


def test_default_pairs_and_parsing():
    vit, cnn = build_model(VIT, 's'), build_model(CNN, 't')
    assert T.stage_paths(cnn) == ['backbone.layer1', 'backbone.layer2', 'backbone.layer3']
    assert T.default_pairs(vit, cnn) == [('backbone.layers.1', 'backbone.layer1'),
                                         ('backbone.layers.2', 'backbone.layer2'),
                                         ('backbone.layers.3', 'backbone.layer3')]
    assert T.parse_pairs(['backbone.layers.1:backbone.layer2']) == [
        ('backbone.layers.1', 'backbone.layer2')]
    with pytest.raises(ValueError, match='not'):
        T.parse_pairs(['backbone.layers.1'])


@pytest.mark.slow
def test_transferability_itself_is_one_independent_models_lower(files, tmp_path):
    cfg = load_config(VIT_CFG)
    fit, ev = T.split_images(cfg, 64, 32, fit_split='test')  # disjoint: A = images 32..95
    assert (fit.source['start'], ev.source['start']) == (32, 0)
    (vit0, ) = load_subjects(VIT_CFG, files['vit0'])
    (vit1, ) = load_subjects(VIT_CFG, files['vit1'])
    (cnn0, ) = load_subjects(CNN_CFG, files['cnn0'])
    (cnn1, ) = load_subjects(CNN_CFG, files['cnn1'])
    # a model with itself: 1, per image (pooled tokens) and per position (CNN maps)
    rows = T.measure(vit0, vit0, T.default_pairs(vit0.model, vit0.model), fit, ev, mode='pooled')
    assert [r['cosine'] for r in rows] == pytest.approx([1.0] * 4, abs=1e-4)
    pairs = T.default_pairs(cnn0.model, cnn1.model)
    itself = T.measure(cnn0, cnn0, pairs, fit, ev)
    assert [r['cosine'] for r in itself] == pytest.approx([1.0] * 3, abs=1e-4)
    assert [r['eval_samples'] for r in itself] == [32 * 28 * 28, 32 * 14 * 14, 32 * 7 * 7]
    # two independently initialised CNNs: clearly lower
    other = T.measure(cnn0, cnn1, pairs, fit, ev)
    cos = [r['cosine'] for r in other]
    assert max(cos) < 0.95 and np.mean(cos) < 0.92, cos
    # ViT <- independently initialised ViT: lower than itself, yet close to 1 at random init
    # (the residual stream carries the linear patch embedding; see the module docstring)
    cos = [r['cosine'] for r in T.measure(vit0, vit1, T.default_pairs(vit0.model, vit1.model),
                                          fit, ev)]
    assert max(cos) < 1 - 1e-3, cos

    results = {'itself': itself, 'another CNN': other}
    table = T.markdown_table(results).splitlines()
    assert table[0] == ('| student layer | teacher layer | dims (s -> t) | cosine: itself | '
                        'cosine: another CNN |')
    assert table[2].startswith('| `backbone.layer1` | `backbone.layer1` | 16 -> 16 | 1.0000 | ')
    out = tmp_path / 'bars.png'
    assert T.plot_transferability(results, str(out)) == (1, 4)  # 3 pairs, 4 slots at least
    h, w, _ = read_png(out)
    assert (w, h) == figure_size(1, 4, T.BAR_PANEL) == (640, 400)


def test_token_and_map_features_meet_on_the_coarser_grid():
    vit = build_model(VIT, 's')
    tokens = torch.randn(2, 50, 64)  # cls + 7 x 7 patch tokens
    s = T.spatial_features(vit, tokens)
    assert s.shape == (2, 7, 7, 64) and torch.equal(s[0, 0, 1], tokens[0, 2])
    t = T.spatial_features(vit, (torch.randn(2, 16, 28, 28), ))  # a backbone's tuple output
    assert t.shape == (2, 28, 28, 16)
    xs, xt = T.as_samples(s, t, 'tokens')
    assert xs.shape == (98, 64) and xt.shape == (98, 16)
    torch.testing.assert_close(xt[0], t[0, :4, :4].mean(dim=(0, 1)))
    xs, xt = T.as_samples(s, t, 'pooled')
    assert xs.shape == (2, 64) and xt.shape == (2, 16)


@pytest.mark.slow
def test_transferability_cli(files):
    out = _cli(files, 'transfer')
    table = open(files['dir'] / 'transfer.md').read().splitlines()
    assert table[0].startswith('| student layer | teacher layer |') and len(table) == 6
    for line in table[2:]:  # 'itself': the teacher is the same model and weights
        itself, distilled = (float(c) for c in line.strip(' |').split('|')[-2:])
        assert itself == pytest.approx(1.0, abs=1e-4) and distilled == pytest.approx(1.0, abs=1e-4)
    h, w, _ = read_png(files['dir'] / 'transfer.png')
    assert (w, h) == figure_size(1, 4, T.BAR_PANEL)
    assert '64/64' in out and '32/32' in out  # progress over split A and split B


# -- curves -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_curves_read_runs_and_plot(files, tmp_path):
    kd, alone = C.Run(files['run_kd']), C.Run(files['run_alone'])
    assert len(kd.files) == 2 and len(kd.train) == 16 and len(kd.val) == 4  # resumed: 2 files
    assert kd.by_epoch and kd.label == 'vit_kd'
    x, y, xl = kd.series('accuracy/top1')
    assert xl == 'epoch' and list(x) == [1, 2, 3, 4] and list(y) == [51, 61, 71, 81]
    x, y, xl = kd.series('loss_kd')
    assert xl == 'iteration' and list(x) == list(range(1, 17))
    assert C.default_keys([alone, kd]) == ['loss', 'loss_cls', 'loss_kd', 'accuracy/top1']
    out = tmp_path / 'c.png'
    keys = C.plot_curves([alone, kd], str(out), smooth_window=3)
    assert keys == ['loss', 'loss_cls', 'loss_kd', 'accuracy/top1']
    h, w, _ = read_png(out)
    assert (w, h) == figure_size(2, 3, C.CURVE_PANEL, C.CURVE_HEADER) == (1350, 690)
    C.plot_curves([alone, kd], str(out), keys=['loss', 'accuracy/top1'])
    h, w, _ = read_png(out)
    assert (w, h) == figure_size(1, 2, C.CURVE_PANEL, C.CURVE_HEADER)
    with pytest.raises(ValueError, match=r"no run logged \['loss_fitnet'\]"):
        C.plot_curves([alone, kd], str(out), keys=['loss_fitnet'])
    with pytest.raises(FileNotFoundError, match='no MMEngine scalar log'):
        C.Run(str(tmp_path))
    assert C.unique_labels(['a/x/run', 'b/y/run']) == ['x/run', 'y/run']


@pytest.mark.slow
def test_plot_curves_cli(files):
    out = _cli(files, 'curves')
    assert 'vit_alone: 16 training and 4 validation records' in out
    assert "4 panel(s): ['loss', 'loss_cls', 'loss_kd', 'accuracy/top1']" in out
    h, w, _ = read_png(files['dir'] / 'curves.png')
    assert (w, h) == figure_size(2, 3, C.CURVE_PANEL, C.CURVE_HEADER)


def test_split_override_follows_test_mode():
    # mmpretrain's MNIST datasets read their files by test_mode, not by split
    from mmkd.analysis.loading import dataset_config, load_config
    cfg = load_config('configs/fmnist/vit-small_1xb128_fmnist.py')
    assert dataset_config(cfg, 'train')['test_mode'] is False
    assert dataset_config(cfg, 'test')['test_mode'] is True
    assert dataset_config(cfg)['test_mode'] is True
