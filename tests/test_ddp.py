"""Distributed training without ``find_unused_parameters=True``: DDP's reducer then expects a
gradient for every parameter it syncs in every backward. One real train step of each method's
config checks exactly that (per update for Cross-Architecture KD, whose CrossArchDDP has one
reducer per update); a 2-process gloo run of the Fashion-MNIST CAKD config checks that both
reducers all-reduce."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

import mmkd  # noqa: F401
from mmkd.registry import MODELS
from conftest import FMNIST, ROOT, random_batch
from tools_helpers import PY, run_tool

pytestmark = pytest.mark.filterwarnings('ignore:teacher_ckpt=None', 'ignore:pkg_resources')

IMAGENET = dict(size=64, channels=3, num_classes=1000)  # small inputs: any size runs these nets
FMNIST_IN = dict(size=28, channels=1, num_classes=10)
# method -> (config, batch); the Fashion-MNIST configs where there is one, else the paper's
CASES = {
    'kd': ('configs/kd/fmnist_vit-small_resnet-small.py', FMNIST_IN),
    'nkd': ('configs/nkd/resnet18_resnet34_8xb32_in1k.py', IMAGENET),
    'dkd': ('configs/dkd/resnet18_resnet34_8xb32_in1k.py', IMAGENET),
    'fitnet': ('configs/fitnet/resnet18_resnet34_8xb32_in1k.py', IMAGENET),
    'deit': ('configs/deit/deit-tiny-distilled_regnety-160_8xb128_in1k.py', IMAGENET),
    'cskd': ('configs/cskd/fmnist_deit-small_resnet-small.py', FMNIST_IN),
    'tat': ('configs/tat/resnet18_resnet34_8xb32_in1k.py', IMAGENET),
    'cakd': ('configs/cakd/fmnist_resnet-small_vit-small.py', FMNIST_IN),
}
# every distillation config of the results table (tools/benchmark/results.py, quickstart)
CASES.update({f'results-{osp.splitext(osp.basename(path))[0]}': (path, FMNIST_IN)
              for path in sorted(glob.glob(osp.join(ROOT, 'configs/results/*.py')))
              if not osp.basename(path).startswith(('teacher', 'vit_baseline', 'cnn_baseline'))})


def build(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    cfg.model.teacher_ckpt = None
    if isinstance(cfg.model.student, dict) and cfg.model.student.get('init_cfg'):
        # TaT's student starts from a pretrained checkpoint
        cfg.model.student.init_cfg = None
    if 'data_preprocessor' not in cfg.model and cfg.get('data_preprocessor'):
        cfg.model.data_preprocessor = cfg.data_preprocessor
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def record_gradients(model, optim_wrapper, batch):
    """``{optimizer wrapper name: names of the parameters whose gradient was accumulated}`` in
    each backward of one real train step: the grad-accumulator hooks that DDP's reducer counts."""
    fired, seen = {}, set()
    handles = [p.register_post_accumulate_grad_hook(lambda p, n=n: seen.add(n))
               for n, p in model.named_parameters() if p.requires_grad]
    wrappers = (dict(optim_wrapper.items()) if isinstance(optim_wrapper, OptimWrapperDict)
                else dict(student=optim_wrapper))
    for name, wrapper in wrappers.items():
        def backward(loss, _orig=wrapper.backward, _name=name, **kwargs):
            seen.clear()
            _orig(loss, **kwargs)
            fired[_name] = set(seen)
        wrapper.backward = backward
    try:
        model.train()
        log = model.train_step(random_batch(n=2, **batch), optim_wrapper)
    finally:
        for h in handles:
            h.remove()
    assert all(torch.isfinite(v) for v in log.values())
    return fired


@pytest.mark.parametrize('method', list(CASES))
def test_one_step_gives_every_trainable_parameter_a_gradient(method):
    path, batch = CASES[method]
    model, optim_wrapper = build(path)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith('teacher.') for n in trainable)
    fired = record_gradients(model, optim_wrapper, batch)
    if not hasattr(model, 'discriminators'):
        assert set(fired) == {'student'}
        assert sorted(trainable - fired['student']) == []
        return
    # Cross-Architecture KD: the first iteration updates the student, then the discriminator;
    # CrossArchDDP syncs each update with its own reducer, over exactly these parameters
    d_ids = {id(p) for p in model.discriminators.parameters()}
    disc = {n for n, p in model.named_parameters() if id(p) in d_ids}
    assert disc and set(fired) == {'student', 'discriminator'}
    assert sorted((trainable - disc) ^ fired['student']) == []
    assert sorted(disc ^ fired['discriminator']) == []


# -- a real 2-process run ------------------------------------------------------------------
CAKD_CFG = 'configs/cakd/fmnist_resnet-small_vit-small.py'
SAVE_HOOK = '''
import os.path as osp
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmkd.registry import HOOKS


@HOOKS.register_module(force=True)
class SaveRankState(Hook):
    """Every rank writes its model's state before and after training, how many steps the
    discriminator's optimizer took, and find_unused_parameters of both reducers."""

    def before_train(self, runner):
        self.start = {k: v.clone() for k, v in runner.model.module.state_dict().items()}

    def after_train(self, runner):
        model = runner.model
        d_optim = runner.optim_wrapper['discriminator'].optimizer
        torch.save(dict(start=self.start, end=model.module.state_dict(),
                        params=[n for n, _ in model.module.named_parameters()],
                        d_steps=sorted({int(s['step']) for s in d_optim.state.values()}),
                        find_unused=[model.reducers[u].find_unused_parameters
                                     for u in ('student', 'discriminator')]),
                   osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
'''


@pytest.mark.skipif(not osp.isfile(osp.join(FMNIST, 'train-images-idx3-ubyte')),
                    reason='Fashion-MNIST not prepared: run tools/setup_env.sh')
def test_cakd_two_processes_without_find_unused_parameters(tmp_path):
    (tmp_path / 'save_rank_state.py').write_text(SAVE_HOOK)
    cfg = tmp_path / 'cakd_ddp.py'
    cfg.write_text(f"_base_ = ['{ROOT}/{CAKD_CFG}']\n"
                   "custom_imports = dict(imports=['save_rank_state'])\n"
                   "custom_hooks = [dict(type='SaveRankState')]\n")
    # 6 iterations of 2 x 8 images; the discriminator updates at iterations 0, 2 and 4
    run_tool(['bash', 'tools/dist_train.sh', str(cfg), '2', '--work-dir', str(tmp_path),
              '--no-validate', '--cfg-options', 'model.teacher_ckpt=None', 'model.d_interval=2',
              'train_dataloader.dataset.indices=96', 'train_dataloader.batch_size=8',
              'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
              'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1', 'randomness.seed=0'],
             env=dict(PYTHON=PY, PORT='29523', PYTHONPATH=str(tmp_path)), timeout=300)
    log = open(next(tmp_path.glob('*/*.log'))).read()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'Epoch(train) [1][6/6]' in log  # 96 images / (2 processes x 8): the data is split
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pth') for r in (0, 1))
    assert r0['find_unused'] == r1['find_unused'] == [False, False]
    assert r0['d_steps'] == r1['d_steps'] == [3]
    assert int(r0['end']['train_iter']) == 6
    # parameters only: BN statistics stay per rank (broadcast_buffers=False, as before)
    disc = [k for k in r0['params'] if k.startswith('discriminators.')]
    student = [k for k in r0['params'] if k.startswith('student.') or '.pca.' in k or '.gl.' in k]
    assert disc and student
    for key in disc + student:
        # both ranks started equal (DDP broadcasts at construction) and both sides trained ...
        assert torch.equal(r0['start'][key], r1['start'][key]), key
    moved = [k for k in disc + student if not torch.equal(r0['start'][k], r0['end'][k])]
    assert any(k in moved for k in disc) and any(k in moved for k in student)
    # ... on different images: only all-reduced gradients keep the ranks' weights equal
    assert [k for k in disc + student if not torch.equal(r0['end'][k], r1['end'][k])] == []
