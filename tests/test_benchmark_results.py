"""The results table: its statistics on fixed numbers, its job scheduling, and a reduced run of
tools/benchmark/results.py on real Fashion-MNIST (every row, tiny budget)."""
import json
import math
import os.path as osp
import re
import statistics

import pytest

from conftest import FMNIST, ROOT
from tools_helpers import PY, run_tool

needs_fmnist = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                  reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
TINY = ['--train-size', '192', '--labelled', '64', '--teacher-train-size', '192',
        '--test-size', '200', '--epochs', '1', '--teacher-epochs', '1']


def welch_reference(a, b):
    """Welch's t-test written out: t, Welch-Satterthwaite degrees of freedom, two-sided p."""
    from scipy.stats import t as student_t
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return 2 * student_t.sf(abs(t), df)


def test_summary_mean_std_delta_and_welch():
    from mmkd.benchmark.report import Row, markdown_table, summarize
    rows = [Row('b', 'S', 'no distillation', 'b.py'), Row('kd', 'S', 'KD', 'kd.py', 't'),
            Row('bad', 'S', 'bad', 'bad.py', 't'), Row('flat', 'S', 'flat', 'f.py', 't')]
    accs = dict(b=[80.0, 80.5, 79.5], kd=[82.0, 82.4, 81.9], bad=[79.0, 81.5, 80.1],
                flat=[80.0, 80.0, 80.0])
    teachers = dict(t=dict(name='T', top1=91.25))
    recs = {r['key']: r for r in summarize(rows, accs, teachers)}
    kd = recs['kd']
    assert kd['mean'] == round(statistics.mean(accs['kd']), 2)
    assert kd['std'] == round(statistics.stdev(accs['kd']), 2)
    assert kd['delta'] == round(statistics.mean(accs['kd']) - 80.0, 2)
    assert kd['p_value'] == pytest.approx(welch_reference(accs['kd'], accs['b']), abs=1e-4)
    assert kd['significant'] is True and kd['teacher'] == 'T' and kd['teacher_top1'] == 91.25
    assert recs['bad']['significant'] is False and recs['bad']['p_value'] > 0.05
    # a baseline has no delta; zero variance in one group is still a defined test
    assert recs['b']['delta'] is None and recs['b']['significant'] is None
    assert recs['flat']['p_value'] == pytest.approx(welch_reference(accs['flat'], accs['b']),
                                                    abs=1e-4)
    table = markdown_table(list(recs.values()), teachers)
    kd_line = [line for line in table.splitlines() if '| KD |' in line][0]
    assert '| 82.10 ± 0.26 |' in kd_line and '| +2.10 |' in kd_line and kd_line.endswith('| yes |')
    assert '| T | (trained alone) | - | 91.25 |' in table
    assert 'vs the row it adds to' not in table  # no row has a reference


def test_a_row_is_also_compared_with_the_row_it_adds_to():
    from mmkd.benchmark.report import Row, markdown_table, summarize
    rows = [Row('b', 'S', 'no distillation', 'b.py'), Row('kd', 'S', 'KD', 'kd.py', 't'),
            Row('x_kd', 'S', 'X + KD', 'x.py', 't', reference='kd')]
    accs = dict(b=[80.0, 80.5, 79.5], kd=[82.0, 82.4, 81.9], x_kd=[83.0, 83.3, 82.8])
    teachers = dict(t=dict(name='T', top1=91.25))
    recs = {r['key']: r for r in summarize(rows, accs, teachers)}
    x = recs['x_kd']
    assert x['reference'] == 'KD'
    assert x['delta_reference'] == round(statistics.mean(accs['x_kd']) - statistics.mean(
        accs['kd']), 2)
    assert x['p_reference'] == pytest.approx(welch_reference(accs['x_kd'], accs['kd']), abs=1e-4)
    assert x['significant_reference'] is True and 'reference' not in recs['kd']
    table = markdown_table(list(recs.values()), teachers).splitlines()
    assert table[0].endswith('| Δ vs the row it adds to |')
    x_line = next(line for line in table if '| X + KD |' in line)
    assert x_line.endswith(f"| +0.93 vs KD (p {x['p_reference']:.3f}*) |")
    assert all(line.count('|') == 10 for line in table)
    with pytest.raises(ValueError, match="reference 'kd' is a row of S, not of other"):
        summarize(rows + [Row('y', 'other', 'Y', 'y.py', 't', reference='kd')], accs, teachers)


def test_every_reference_of_the_results_table_is_a_row_of_its_student():
    from mmkd.benchmark.rows import ROWS
    by_key = {r.key: r for r in ROWS}
    refs = [r for r in ROWS if r.reference]
    assert refs
    for r in refs:
        assert by_key[r.reference].student == r.student and not by_key[r.reference].is_baseline


def test_jobs_wait_for_their_teacher_and_reuse_finished_runs(tmp_path, monkeypatch):
    """Two slots, a student that needs its teacher: the teacher finishes before the student
    starts; a second call with the same commands and configs trains nothing; an edited base
    config trains its runs again."""
    from mmkd.benchmark import jobs as jobs_mod
    started = []
    (tmp_path / 'base.py').write_text('lr = 0.1\n')
    (tmp_path / 'c.py').write_text("_base_ = ['./base.py']\n")
    config = str(tmp_path / 'c.py')

    def fake_train(job, cmd, env, progress):  # the scheduling, not the training, is tested
        started.append((job.name, list(cmd)))
        import os
        os.makedirs(job.work_dir, exist_ok=True)
        with open(osp.join(job.work_dir, jobs_mod.DONE_FILE), 'w') as f:
            json.dump(jobs_mod.run_record(job, cmd), f)

    def make():
        return [jobs_mod.Job('t', config, ['a=1'], 1, 10),
                jobs_mod.Job('s0', config, ['a=2'], 1, 10, needs=('t', ),
                             resolve=lambda d: [f'ckpt={d["t"]}']),
                jobs_mod.Job('s1', config, ['a=3'], 1, 10)]

    monkeypatch.setattr(jobs_mod, '_train', fake_train)
    monkeypatch.setattr(jobs_mod, 'val_curve', lambda work_dir, key='accuracy/top1': [1.0])
    dirs = jobs_mod.run_jobs(make(), str(tmp_path), slots=2)
    order = [n for n, _ in started]
    assert order.index('t') < order.index('s0') and set(order) == {'t', 's0', 's1'}
    assert f'ckpt={dirs["t"]}' in dict(started)['s0']
    started.clear()
    jobs_mod.run_jobs(make(), str(tmp_path), slots=2)
    assert started == []
    (tmp_path / 'base.py').write_text('lr = 0.2\n')
    jobs_mod.run_jobs(make(), str(tmp_path), slots=2)
    assert {n for n, _ in started} == {'t', 's0', 's1'}
    with pytest.raises(ValueError, match=r"not in the table: \['x'\]"):
        jobs_mod.run_jobs([jobs_mod.Job('s', 'c.py', [], 1, 1, needs=('x', ))], str(tmp_path))


def test_labelled_per_batch_gives_every_student_the_same_batches():
    """With --labelled-per-batch every student run, the baseline too, gets the labelled batch
    sampler for the whole set and the same epochs; without it the baseline trains on the
    labelled images alone (10x the epochs of a tenth of the set)."""
    from mmkd.benchmark.report import Row
    from mmkd.benchmark.table import Budget, Teacher, build_jobs
    teachers = [Teacher('t', 'T', 't.py', epochs=2)]
    rows = [Row('b', 'S', 'no distillation', 'b.py'), Row('kd', 'S', 'KD', 'kd.py', 't')]
    paired = build_jobs(teachers, rows, Budget(1, 3, train_size=600, labelled=60,
                                               labelled_per_batch=16), '/data')
    plain = build_jobs(teachers, rows, Budget(1, 3, train_size=600, labelled=60), '/data')
    key = 'train_dataloader.batch_sampler'
    by_name = {j.name: j for j in paired}
    for name in ('b_seed0', 'kd_seed0'):
        job = by_name[name]
        assert job.epochs == 3 and f'{key}.type=mmkd.LabelledBatchSampler' in job.options
        assert f'{key}.labelled=16' in job.options and f'{key}.num_labelled=60' in job.options
        assert 'train_dataloader.dataset.indices=60' not in job.options
    assert not any(key in o for o in by_name['t'].options)  # teachers: every label, plain
    base = {j.name: j for j in plain}['b_seed0']
    assert base.epochs == 30 and 'train_dataloader.dataset.indices=60' in base.options
    assert not any(key in o for j in plain for o in j.options)


def test_labelled_per_batch_default_and_without_a_labelled_part_an_error():
    import argparse
    from mmkd.benchmark.rows import BUDGET
    from mmkd.benchmark.table import add_arguments, budget_from_args
    parser = argparse.ArgumentParser()
    add_arguments(parser, BUDGET, 'work_dirs/x')
    budget = budget_from_args(parser.parse_args([]))
    assert (budget.labelled, budget.labelled_per_batch) == (6000, 64)  # the table's default
    assert budget_from_args(parser.parse_args(['--labelled-per-batch', '32'])).labelled_per_batch == 32
    assert budget_from_args(parser.parse_args(['--labelled-per-batch', '0'])).labelled_per_batch is None
    # every image labelled: no per-batch mix, unless asked for explicitly
    every = budget_from_args(parser.parse_args(['--labelled', '0']))
    assert (every.labelled, every.labelled_per_batch) == (None, None)
    with pytest.raises(SystemExit, match='--labelled-per-batch 64 needs a labelled part'):
        budget_from_args(parser.parse_args(['--labelled', '0', '--labelled-per-batch', '64']))


def test_run_record_is_relative_to_the_checkout():
    """A checkout moved elsewhere keeps its finished runs: the record names paths under the
    repository relative to it."""
    from mmkd.benchmark import jobs as jobs_mod
    job = jobs_mod.Job('t', 'configs/results/vit-p7-w64_1xb128_fmnist-10pct.py',
                       [f'data_root={jobs_mod.ROOT}/data/fashion_mnist'], 1, 10)
    job.work_dir = osp.join(jobs_mod.ROOT, 'work_dirs', 'x', 't')
    record = jobs_mod.run_record(job, jobs_mod.command(job))
    assert record['command'] == ['tools/train.py',
                                 'configs/results/vit-p7-w64_1xb128_fmnist-10pct.py',
                                 '--work-dir', 'work_dirs/x/t', '--cfg-options',
                                 'data_root=data/fashion_mnist']
    assert len(record['config_sha256']) == 64


def test_data_root_must_hold_the_idx_files(tmp_path):
    from mmkd.benchmark.table import prepare_data
    (tmp_path / 'train-images-idx3-ubyte').write_bytes(b'')
    with pytest.raises(SystemExit, match='missing MNIST-format file.*train-labels-idx1-ubyte'):
        prepare_data(str(tmp_path), str(tmp_path / 'work'))


def test_default_table_is_the_issue_rows_and_extras_are_opt_in():
    """The default table has every method the results table promises, plus Cross-Architecture
    KD + KD; the supplementary rows run only when asked for, and a reference left out is simply
    not compared."""
    from mmkd.benchmark.rows import ROWS
    from mmkd.benchmark.table import select_rows
    default = {r.key for r in select_rows(ROWS)}
    methods = {(r.student, r.method) for r in ROWS if r.key in default}
    for student, names in (('small ViT', ('no distillation', 'KD', 'NKD', 'DKD', 'CSKD',
                                          'DeiT (hard, distillation token)', 'ViTKD',
                                          'ViTKD + NKD')),
                           ('small CNN', ('no distillation', 'KD', 'FitNet',
                                          'Cross-Architecture KD', 'TaT (one-to-all)',
                                          'Cross-Architecture KD + KD'))):
        assert {(student, n) for n in names} <= methods
    extras = {r.key for r in ROWS if r.extra}
    assert extras and not extras & default
    assert {r.key for r in select_rows(ROWS, extras=True)} == default | extras
    assert [r.key for r in select_rows(ROWS, only=['cnn_kd_vit'])] == ['cnn_kd_vit']
    with pytest.raises(SystemExit, match="unknown row.*'cnn_nope'.*rows: "):
        select_rows(ROWS, only=['cnn_nope'])


@pytest.mark.slow
@needs_fmnist
def test_reduced_results_benchmark_every_row(tmp_path):
    """Every row of the default table trains and is reported, from gzipped IDX files given by
    --data-root (as a user's own MNIST-format download would be)."""
    import gzip
    import shutil
    data = tmp_path / 'my_mnist_format_set'
    data.mkdir()
    for f in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
              't10k-labels-idx1-ubyte'):
        with open(osp.join(FMNIST, f), 'rb') as src, gzip.open(data / f'{f}.gz', 'wb') as dst:
            shutil.copyfileobj(src, dst)
    work = tmp_path / 'results'
    out = run_tool([PY, 'tools/benchmark/results.py', '--work-dir', str(work), '--seeds', '2',
                    '--teacher-dir', str(tmp_path / 'teachers'),
                    '--data-root', str(data), '--json', str(tmp_path / 'fmnist.json'), *TINY],
                   timeout=1200).stdout
    assert re.search(r'CNN teacher: epoch 1/1 iter \d+/\d+\s+time left', out)
    from mmkd.benchmark.rows import ROWS
    result = json.load(open(tmp_path / 'fmnist.json'))
    default = [r.key for r in ROWS if not r.extra]
    assert [r['key'] for r in result['rows']] == default
    for rec in result['rows']:
        assert len(rec['seeds']) == 2 and rec['mean'] == pytest.approx(
            statistics.mean(rec['seeds']), abs=0.01)
        assert set(rec) >= {'student', 'method', 'teacher', 'seeds', 'mean', 'std', 'delta',
                            'significant'}
    assert result['meta']['data'] == 'my_mnist_format_set'
    text = open(work / 'results.md').read()
    assert text.startswith('my_mnist_format_set test top-1')
    assert '1 epoch(s) of 192 training images per student, 64 of them labelled' in text
    rows = [line for line in text.splitlines() if line.startswith('| small')]
    assert len(rows) == len(default)
    header = next(line for line in text.splitlines() if line.startswith('| student |'))
    # the last column only when a row's reference ran: the default table has none (cnn_kd_vit,
    # the reference of Cross-Architecture KD + KD, is a supplementary row)
    with_ref = any(rec.get('reference') for rec in result['rows'])
    assert header.count('|') - 1 == (9 if with_ref else 8)
    for line in rows:
        cells = [c.strip() for c in line.strip('|').split('|')]
        assert len(cells) == header.count('|') - 1, line
        assert re.fullmatch(r'\d+\.\d\d ± \d+\.\d\d', cells[3]), line
    import matplotlib.image as mpimg
    assert mpimg.imread(work / 'curves.png').shape[:2] == (590, 1200)
