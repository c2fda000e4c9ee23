"""Issue 21, item 3: a non-finite loss stops the run at that iteration, naming the loss, the
iteration and its last finite value, before the step updates anything; or, configured, the
step is skipped (no update), counted and logged, up to max_skips."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper

import mmkd  # noqa: F401
from mmkd.models.losses.base import DistillLoss
from mmkd.models.nan_guard import SKIPS_KEY, NonFiniteLossError
from mmkd.registry import HOOKS, MODELS
from conftest import FMNIST, random_batch, runner_from_cfg

pytestmark = pytest.mark.filterwarnings('ignore:teacher_ckpt=None', 'ignore:pkg_resources')
needs_data = pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                                reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
KD = 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'
CAKD = 'configs/cakd/resnet-small_vit-small_1xb128_fmnist.py'
VALUE = 1.25


@MODELS.register_module(force=True)
class NaNAtLoss(DistillLoss):
    """Test-only distillation loss: ``VALUE`` (with a zero gradient into the student's
    logits), NaN at the training steps (1-based) listed in ``at``."""
    default_inputs = dict(s_logits='student.logits')

    def __init__(self, at=(), **kwargs):
        super().__init__(**kwargs)
        self.at, self.calls = set(at), 0

    def forward(self, s_logits):
        self.calls += 1
        value = float('nan') if self.calls in self.at else VALUE
        return s_logits.sum() * 0 + value


@HOOKS.register_module(force=True)
class ParamsChangedHook(Hook):
    """Records, per iteration, whether the student's parameters changed in that step."""

    def __init__(self):
        self.changed = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._before = [p.detach().clone() for p in runner.model.student.parameters()]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        now = list(runner.model.student.parameters())
        self.changed.append(any(not torch.equal(a, b) for a, b in zip(self._before, now)))


def _runner(tmp_path, at, max_iters, nan_guard=None):
    cfg = Config.fromfile(KD)
    cfg.work_dir = str(tmp_path)
    cfg.model.teacher_ckpt = None
    cfg.model.distill_losses['loss_nan'] = dict(type='NaNAtLoss', at=at)
    if nan_guard is not None:
        cfg.model.nan_guard = nan_guard
    cfg.train_dataloader.update(batch_size=32, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.indices = 64
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=1000)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.pop('teacher_check', None)  # a random teacher is the point here
    cfg.custom_hooks = [dict(type='ParamsChangedHook')]
    cfg.randomness = dict(seed=0)
    return runner_from_cfg(cfg)


def _adam_steps(runner):
    opt = runner.optim_wrapper.optimizer
    return {int(s['step']) for s in opt.state.values()}


def _log_text(work_dir):
    return ''.join(open(osp.join(root, f)).read() for root, _, files in os.walk(str(work_dir))
                   for f in files if f.endswith('.log'))


@pytest.mark.slow
@needs_data
def test_nan_distillation_loss_stops_the_run_naming_it(tmp_path):
    runner = _runner(tmp_path, at={3}, max_iters=5)
    with pytest.raises(NonFiniteLossError) as e:
        runner.train()
    msg = str(e.value)
    assert msg.startswith('non-finite loss at iteration 3: loss_nan = nan (last finite value '
                          f'{VALUE} at iteration 2); loss = nan (last finite value ')
    assert 'before this step updates any parameter' in msg and "action='skip'" in msg
    assert runner.iter == 2  # stopped in the third iteration ...
    assert _adam_steps(runner) == {2}  # ... whose step never reached the optimizer


@pytest.mark.slow
@needs_data
def test_skip_mode_drops_the_step_counts_and_continues(tmp_path):
    runner = _runner(tmp_path, at={2}, max_iters=4, nan_guard=dict(action='skip', max_skips=1))
    runner.train()
    assert runner.iter == 4
    changed = [h for h in runner.hooks if isinstance(h, ParamsChangedHook)][0].changed
    assert changed == [True, False, True, True]  # the skipped step left the weights alone
    assert _adam_steps(runner) == {3}  # and the optimizer state (no momentum, no decay)
    assert runner.message_hub.get_info(SKIPS_KEY) == 1
    assert runner.message_hub.get_scalar('train/nan_skips').current() == 1
    log = _log_text(tmp_path)
    assert ('nan_guard: skipped iteration 2 (no parameter update, gradients zeroed), 1 of at '
            'most 1 skips: non-finite loss at iteration 2: loss_nan = nan') in log
    assert 'nan_skips: 1' in log  # in the logged line of every iteration from then on


@pytest.mark.slow
@needs_data
def test_skip_mode_stops_after_max_skips(tmp_path):
    runner = _runner(tmp_path, at={1, 3}, max_iters=5, nan_guard=dict(action='skip',
                                                                        max_skips=1))
    with pytest.raises(NonFiniteLossError, match=r'^non-finite loss at iteration 3: loss_nan = '
                       rf'nan \(last finite value {VALUE} at iteration 2\).*skipped 1 '
                       r'non-finite steps already, max_skips=1'):
        runner.train()


@pytest.fixture
def fresh_message_hub(request):
    """Outside a runner the guard reads the iteration from the current message hub: a new one,
    not the last runner's of an earlier test."""
    from mmengine.logging import MessageHub
    return MessageHub.get_instance(f'nan_guard_{request.node.name}')


def _kd_model(**model):
    cfg = Config.fromfile(KD)
    cfg.model.teacher_ckpt = None
    cfg.model.update(model)
    torch.manual_seed(0)
    m = MODELS.build(cfg.model)
    return m, build_optim_wrapper(m, cfg.optim_wrapper)


def test_nan_task_loss_without_earlier_finite_value(fresh_message_hub):
    model, optim = _kd_model()
    student_loss = model.student_loss
    model.student_loss = lambda *a: {k: v * float('inf') for k, v in student_loss(*a).items()}
    with pytest.raises(NonFiniteLossError, match=r'loss_cls = inf \(no finite value before\)'):
        model.train_step(random_batch(4), optim)


def test_guard_off_and_bad_settings(fresh_message_hub):
    model, optim = _kd_model(nan_guard=None)
    student_loss = model.student_loss
    model.student_loss = lambda *a: {k: v * float('nan') for k, v in student_loss(*a).items()}
    out = model.train_step(random_batch(4), optim)  # no guard: MMEngine's behaviour
    assert torch.isnan(out['loss'])
    with pytest.raises(ValueError, match='action must be one of'):
        _kd_model(nan_guard=dict(action='ignore'))


def _cakd_model(**model):
    cfg = Config.fromfile(CAKD)
    cfg.model.teacher_ckpt = None
    cfg.model.update(model)
    torch.manual_seed(0)
    m = MODELS.build(cfg.model)
    return m, build_optim_wrapper(m, cfg.optim_wrapper)


def test_cross_arch_distiller_is_guarded_through_its_own_train_step(fresh_message_hub):
    model, optim = _cakd_model()
    batch = random_batch(4)
    model.train_step(batch, optim)  # a finite step of its two-optimizer scheme
    records = model.teacher_records
    model.teacher_records = lambda *a: {
        k: (v * float('inf') if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
        for k, v in records(*a).items()}
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss at iteration 2: loss_'):
        model.train_step(batch, optim)
    # stopped before both updates (the forward's BatchNorm statistics are not an update)
    assert all(torch.equal(before[k], p) for k, p in model.named_parameters())
    assert int(model.train_iter) == 1
    with pytest.raises(ValueError, match="action='skip' needs BaseDistiller's train_step, but "
                                         'CrossArchDistiller runs its own'):
        _cakd_model(nan_guard=dict(action='skip'))


def _ddp_skip_worker(rank: int, port: int, queue) -> None:
    """One rank of a 2-process gloo run under MMEngine's own DDP wrapper, whose train_step
    calls only ``module.parse_losses``: rank 0's teacher gives NaN at the second step."""
    import torch.distributed as dist
    from mmengine.logging import MessageHub
    from mmengine.model import MMDistributedDataParallel
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    MessageHub.get_instance(f'ddp_skip_{rank}')
    model, _ = _kd_model(nan_guard=dict(action='skip', max_skips=1))
    ddp = MMDistributedDataParallel(module=model, device_ids=None, broadcast_buffers=False)
    optim = build_optim_wrapper(ddp, Config.fromfile(KD).optim_wrapper)
    batch, records, changed = random_batch(4, seed=rank), model.teacher_records, []
    for step in range(3):
        nan = step == 1 and rank == 0
        model.teacher_records = (lambda *a: {k: v * float('nan') for k, v in records(*a).items()}
                                 ) if nan else records
        before = [p.detach().clone() for p in model.parameters()]
        ddp.train_step(batch, optim)
        changed.append(any(not torch.equal(a, p) for a, p in zip(before, model.parameters())))
    total = float(sum(p.double().sum() for p in model.parameters()))
    queue.put((rank, changed, total))
    dist.destroy_process_group()


@pytest.mark.slow
def test_skip_mode_under_mmengine_ddp_skips_on_every_rank():
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_skip_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        results = sorted(queue.get(timeout=300) for _ in procs)
    finally:
        for p in procs:
            p.join(60)
    # the verdict is shared: rank 1, whose own losses were finite, skipped the step too (no
    # rank waits in a gradient all-reduce), and the replicas stay identical afterwards
    assert [changed for _, changed, _ in results] == [[True, False, True]] * 2
    assert results[0][2] == results[1][2]
