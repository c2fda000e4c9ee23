"""tools/benchmark/probes.py: probe parsing, the rows it builds, the final-loss table, and a
tiny end-to-end probe of the Cross-Architecture KD row on real Fashion-MNIST."""
import json
import os.path as osp
import re

import pytest

from conftest import FMNIST
from tools_helpers import PY, run_tool

needs_fmnist = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                  reason='Fashion-MNIST not prepared: run tools/setup_env.sh')


def test_parse_probe():
    from mmkd.benchmark.probes import parse_probe
    assert parse_probe('mv_off:model.multi_view=None') == ('mv_off', ('model.multi_view=None', ))
    # ';' separates options, so values may hold commas
    assert parse_probe('pub:a.b=[0.2,0.05];c=1') == ('pub', ('a.b=[0.2,0.05]', 'c=1'))
    assert parse_probe('same:') == ('same', ())
    with pytest.raises(ValueError, match="expected 'name:key=value"):
        parse_probe('model.multi_view=None')
    with pytest.raises(ValueError, match='without "="'):
        parse_probe('x:model.multi_view')


def test_probe_rows_are_the_baseline_the_row_and_one_row_per_probe():
    from mmkd.benchmark.probes import probe_rows
    from mmkd.benchmark.rows import ROWS
    rows = probe_rows(ROWS, 'cnn_cakd', ['mv_on:model.multi_view.prob=0.5', 'adv_off:x=0'])
    assert [r.key for r in rows] == ['cnn_baseline', 'cnn_cakd', 'cnn_cakd-mv_on',
                                     'cnn_cakd-adv_off']
    row = next(r for r in ROWS if r.key == 'cnn_cakd')
    assert all(r.config == row.config and r.teacher == row.teacher for r in rows[1:])
    assert rows[2].options == ('model.multi_view.prob=0.5', ) and rows[2].student == row.student
    with pytest.raises(SystemExit, match="unknown row 'nope'"):
        probe_rows(ROWS, 'nope', [])
    with pytest.raises(SystemExit, match='is a baseline'):
        probe_rows(ROWS, 'cnn_baseline', [])


def test_final_losses_average_the_last_logged_iterations(tmp_path):
    from mmkd.benchmark.probes import final_losses
    vis = tmp_path / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    records = [dict(iter=i, loss=float(i), loss_cls=2.0 * i, **{'cakd.proj1': 0.5, 'lr': 1e-3,
                                                                 'student.lr': 1e-3})
               for i in range(1, 6)]
    records.append({'accuracy/top1': 80.0, 'step': 1})
    (vis / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in records))
    out = final_losses(str(tmp_path), last=3)
    assert out == dict(loss=4.0, loss_cls=8.0, **{'cakd.proj1': 0.5})


@pytest.mark.slow
@needs_fmnist
def test_reduced_probe_run(tmp_path):
    work = tmp_path / 'probes'
    out = run_tool([PY, 'tools/benchmark/probes.py', 'cnn_cakd', '--seeds', '1',
                    '--probe', 'adv_off:model.distill_losses.loss_cakd.lambda_adv=0.0',
                    '--work-dir', str(work), '--teacher-dir', str(tmp_path / 'teachers'),
                    '--train-size', '128', '--labelled', '64', '--teacher-train-size', '128',
                    '--test-size', '100',
                    '--epochs', '1', '--teacher-epochs', '1'], timeout=900).stdout
    assert 'ViT teacher: epoch 1/1' in out and 'CNN teacher' not in out  # only what it needs
    text = open(work / 'results.md').read()
    methods = [c.split('|')[2].strip() for c in text.splitlines() if c.startswith('| small')]
    assert methods == ['no distillation', 'Cross-Architecture KD',
                       'Cross-Architecture KD [adv_off]']
    losses = open(work / 'losses.md').read()
    line = [r for r in losses.splitlines() if '[adv_off]' in r][0]
    assert 'lambda_adv=0.0' in line
    assert re.search(r'loss_cls \d+\.\d{3}', line) and re.search(r'cakd\.proj2 \d+\.\d{3}', line)
