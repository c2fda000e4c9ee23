"""Distributed training without ``find_unused_parameters=True``: DDP's reducer then expects a
gradient for every parameter it syncs in every backward. The train step of every config checks
exactly that (per update for Cross-Architecture KD, whose CrossArchDDP has one reducer per
update) in test_configs.py; here a 2-process gloo run of the Fashion-MNIST CAKD config checks
that both reducers all-reduce."""
import os.path as osp

import pytest
import torch

import mmkd  # noqa: F401
from conftest import FMNIST, ROOT
from tools_helpers import PY, run_tool

pytestmark = pytest.mark.filterwarnings('ignore:teacher_ckpt=None', 'ignore:pkg_resources')


# -- a real 2-process run ------------------------------------------------------------------
CAKD_CFG = 'configs/cakd/resnet-small_vit-small_1xb128_fmnist.py'
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


@pytest.mark.slow
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
