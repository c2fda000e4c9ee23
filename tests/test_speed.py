"""Speed options of the distiller (bf16 teacher, channels_last, compiled teacher, --amp on CPU)
and the step benchmark against a hand-written loop, in its reduced mode."""
import json
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmkd  # noqa: F401
from mmkd.registry import MODELS
from conftest import CNN, PRE, ROOT, VIT, random_batch


def build(**kwargs):
    """ViT student <- CNN teacher, KD + FitNet-style feature tap, fixed random weights."""
    cfg = dict(type='ClassificationDistiller', student=VIT, teacher=CNN, teacher_ckpt=None,
               teacher_taps=dict(feat='backbone.layer2'),
               distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0)), data_preprocessor=PRE)
    cfg.update(kwargs)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='RANDOM'):
        model = MODELS.build(cfg)
    model.train()
    return model


def records_and_loss(model, seed=0):
    data = model.data_preprocessor(random_batch(8, seed=seed), True)
    records = model.teacher_records(data['inputs'], data['data_samples'])
    torch.manual_seed(1)  # the student's drop path
    losses = model.loss(data['inputs'], data['data_samples'])
    return records, losses


def test_teacher_bf16_autocast_casts_back_and_stays_close():
    ref_records, ref_losses = records_and_loss(build())
    records, losses = records_and_loss(build(teacher_autocast='bfloat16'))
    for key in ('logits', 'feat'):
        ref, got = ref_records[key], records[key]
        ref, got = (ref[0], got[0]) if isinstance(ref, tuple) else (ref, got)
        assert got.dtype == torch.float32  # the losses get float32 features
        assert not torch.equal(got, ref)   # the teacher did run in bf16 ...
        torch.testing.assert_close(got, ref, atol=0.05, rtol=0.05)  # ... and is close to fp32
    torch.testing.assert_close(losses['loss_kd'], ref_losses['loss_kd'], atol=2e-3, rtol=0.05)
    with pytest.raises(ValueError, match="teacher_autocast must be None, 'bfloat16'"):
        MODELS.build(dict(type='ClassificationDistiller', student=VIT, teacher=CNN,
                          teacher_ckpt=None, teacher_autocast='int8', data_preprocessor=PRE))


def test_channels_last_models_and_inputs():
    ref_records, ref_losses = records_and_loss(build())
    model = build(channels_last=True)
    conv = model.teacher.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert model.student.backbone.patch_embed.projection.weight.is_contiguous(
        memory_format=torch.channels_last)
    seen = {}
    model.teacher.backbone.conv1.register_forward_hook(
        lambda m, args, out: seen.update(x=args[0]))  # returns None: output unchanged
    _, losses = records_and_loss(model)
    assert seen['x'].is_contiguous(memory_format=torch.channels_last)
    for key in ('loss_cls', 'loss_kd'):
        torch.testing.assert_close(losses[key], ref_losses[key], atol=1e-5, rtol=1e-4)


def test_compiled_teacher_keeps_taps_weights_and_values():
    eager = build()
    model = build(compile_teacher=True)
    assert not any(k.startswith('teacher') for k in model.state_dict())
    for seed in (0, 1):  # the second call runs the compiled graph, not the first trace
        ref_records, ref_losses = records_and_loss(eager, seed)
        records, losses = records_and_loss(model, seed)
        assert set(records) == {'logits', 'feat'}  # the forward hooks still fire
        torch.testing.assert_close(records['logits'], ref_records['logits'], atol=1e-4,
                                   rtol=1e-4)
        torch.testing.assert_close(losses['loss_kd'], ref_losses['loss_kd'], atol=1e-4,
                                   rtol=1e-4)
    assert model.teacher._compiled_call_impl is not None


def test_compiled_teacher_tap_that_torch_compile_skips_is_an_error():
    """torch 2.14's compile does not run the hook of a Linear inside an attention block
    (Cross-Architecture KD's qkv tap): the first step says so instead of training without it."""
    cfg = Config.fromfile(f'{ROOT}/configs/cakd/resnet-small_vit-small_1xb128_fmnist.py')
    cfg.model.update(teacher_ckpt=None, compile_teacher=True,
                     data_preprocessor=cfg.data_preprocessor)
    with pytest.warns(UserWarning, match='RANDOM'):
        model = MODELS.build(cfg.model)
    data = model.data_preprocessor(random_batch(4), True)
    with pytest.raises(RuntimeError, match=r"teacher taps \['qkv'\] captured nothing.*"
                       'compile_teacher=False'):
        model.teacher_records(data['inputs'], data['data_samples'])


def test_teacher_tap_that_captured_nothing_is_an_error():
    """A tap whose hook did not fire (e.g. a compiled graph traced without it) must not leave
    a loss without its input silently; taps no loss reads (here 'feat') may stay empty."""
    model = build()
    model.teacher_taps.remove()  # the hooks are gone, the taps are still declared
    data = model.data_preprocessor(random_batch(4), True)
    with pytest.raises(RuntimeError, match=r"teacher taps \['logits'\] captured nothing"):
        model.teacher_records(data['inputs'], data['data_samples'])


def test_autocast_optim_wrapper_trains_in_bf16_on_cpu():
    model = build(student_taps=dict(tokens='backbone.layers.0'))
    wrapper = build_optim_wrapper(model, dict(type='AutocastOptimWrapper',
                                              optimizer=dict(type='SGD', lr=0.1)))
    seen = {}
    model.student.backbone.layers[0].attn.qkv.register_forward_hook(  # a Linear: autocast
        lambda m, args, out: seen.update(dtype=out.dtype))
    before = model.student.head.layers.head.weight.detach().clone()
    log_vars = model.train_step(random_batch(8), wrapper)
    assert seen['dtype'] == torch.bfloat16
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(before, model.student.head.layers.head.weight)
    assert model.student.head.layers.head.weight.dtype == torch.float32  # master weights


def test_train_amp_flag_picks_a_wrapper_this_machine_can_run():
    sys.path.insert(0, f'{ROOT}/tools')
    from train import merge_args, parse_args
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    args = parse_args(['any_config.py', '--amp'])  # the real parser: every flag has its default
    cfg = merge_args(cfg, args)
    expected = 'AmpOptimWrapper' if torch.cuda.is_available() else 'AutocastOptimWrapper'
    assert cfg.optim_wrapper.type == expected


@pytest.mark.slow
def test_benchmark_reduced(tmp_path):
    """The benchmark in its reduced mode: (b) must do mmkd's math (equal first-step losses),
    and mmkd's step must not cost a duplicated forward pass over the hand-written one."""
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark/distill_step.py', '--reduced', '--repeats', '3',
         '--warmup', '1', '--json', str(out), '--methods', 'vitkd', 'cskd', 'cakd', 'cache'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout[-2000:])  # the table, in the test log
    assert '| method | batch | a/b' in proc.stdout
    results = {r['method']: r for r in json.loads(out.read_text())['results']}
    assert set(results) == {'vitkd', 'cskd', 'cakd', 'cache'}
    for method, r in results.items():
        assert r['loss_a'] == pytest.approx(r['loss_b'], rel=1e-5), method
        # one extra teacher or student pass in mmkd's step would cost >= 1.3x here
        assert 0.7 < r['a_over_b']['median'] < 1.25, (method, r['a_over_b'])
        assert r['peak_mem_a']['peak'] > 0 and r['peak_mem_b']['peak'] > 0
        assert r['mem_a_over_b'] < 1.3, (method, r['peak_mem_a'], r['peak_mem_b'])
    # with cached logits the step is the student's step plus the (cheap) KD loss
    assert results['cache']['a_over_student']['median'] < 1.3


@pytest.mark.slow
def test_benchmark_batch_cache_with_mixup_reduced(tmp_path):
    """--cache-mix times real train_steps with mixup + cutmix: with cached logits the step is the
    student's step plus the KD loss and the per-group mixing (an extra teacher or student pass
    would cost >= 1.3x), and the data side reads a slot's logits."""
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark/distill_step.py', '--reduced', '--repeats', '5',
         '--warmup', '1', '--json', str(out), '--methods', '--cache-mix'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r['method']: r for r in json.loads(out.read_text())['results']}
    mix, data = results['cache_mix'], results['cache_mix_data']
    assert set(mix['step_s']) == {'cached', 'online', 'student'}
    assert mix['cached_over_student'] < 1.3, mix
    assert data['samples'] == 500 and data['cached_us'] > data['plain_us'] > 0
