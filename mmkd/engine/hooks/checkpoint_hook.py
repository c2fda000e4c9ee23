"""Checkpoints that a hard kill cannot leave half-written, and a resume that checks them."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmkd.registry import HOOKS
from mmkd.utils.checkpoint import (ATOMIC_BACKEND, check_checkpoint, find_resume_checkpoint,
                                   is_local, remove_stale_temp_files)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` whose files are complete or absent, and whose resume
    never loads a damaged one. ``tools/train.py`` and ``tools/test.py`` put it in place of the
    plain ``CheckpointHook`` of any config (same arguments, :func:`use_atomic_checkpoints`);
    a config (or a script building its own ``Runner``) may also name it,
    ``default_hooks.checkpoint.type='AtomicCheckpointHook'`` (``'mmkd.AtomicCheckpointHook'``
    outside the mmkd scope).

    - **Atomic writes**: for a local ``out_dir`` (and no ``backend_args`` of the user's),
      checkpoints and ``best_*`` files are written through
      :class:`~mmkd.utils.checkpoint.AtomicLocalBackend`: a temporary ``.<name>.<pid>.tmp``
      beside the target, fsynced, then renamed over it. Why a file backend rather than an
      override of the saving methods: ``Runner.save_checkpoint`` builds the checkpoint and
      MMEngine's ``save_checkpoint`` hands its bytes to the backend's ``put``, the only step
      that touches the file; overriding ``_save_checkpoint_with_step`` would mean re-writing
      MMEngine's rotation logic (``max_keep_ckpts``), and a backend keeps working when
      MMEngine changes it. MMEngine then rotates old files and updates ``last_checkpoint``
      only after ``put`` returned, i.e. once the new file is complete.
    - **Leftovers**: temporary files of an interrupted save (another process's) are removed
      with a warning when training starts.
    - **Resume** (``before_run``, which the runner calls before loading): an automatic resume
      (``resume=True``, no ``load_from``) takes
      :func:`~mmkd.utils.checkpoint.find_resume_checkpoint`: the file ``last_checkpoint``
      names if it is intact, else the previous complete checkpoint, with a warning naming the
      damaged file. An explicit ``load_from`` (resumed or loaded) that is damaged is an error
      naming it (:class:`~mmkd.utils.checkpoint.DamagedCheckpointError`), not an unpickling
      traceback. Checking reads the file once more (its CRCs), not unpickling it.

    ``last_checkpoint`` itself is still written by MMEngine in place (a few bytes, after the
    checkpoint is complete); if a kill leaves it empty, the resume above scans for the latest
    complete checkpoint.
    """

    def before_run(self, runner) -> None:
        super().before_run(runner)
        # the runner's own resume/load settings (MMEngine keeps them private; its
        # load_or_resume() reads them right after before_run)
        resume, load_from = getattr(runner, '_resume', False), getattr(runner, '_load_from', None)
        if resume and load_from is None:
            chosen = find_resume_checkpoint(runner.work_dir, runner.logger)
            if chosen is not None:
                runner._load_from = chosen
        elif isinstance(load_from, str) and is_local(load_from) and osp.isfile(load_from):
            check_checkpoint(load_from, 'resume' if resume else 'load_from')

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        if self.backend_args is None and self.file_client_args is None and is_local(out_dir):
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        if is_main_process() and is_local(self.out_dir):
            remove_stale_temp_files(self.out_dir, runner.logger)


def use_atomic_checkpoints(runner) -> bool:
    """Put an :class:`AtomicCheckpointHook` in place of the runner's plain MMEngine
    ``CheckpointHook`` (built from the same config arguments, at the same priority), for any
    config: mmkd's, mmpretrain's, mmdet's, mmseg's. ``tools/train.py`` and ``tools/test.py``
    call it on the runner they build. A checkpoint hook of another type (a subclass, the
    user's own) is left alone. Returns whether it replaced one.

    Done on the built runner rather than in the config: the config the runner saves in each
    checkpoint then still names MMEngine's hook, so a student config exported from it
    (``extract_student.py``) stays a plain mmpretrain config that needs no mmkd import.
    """
    from mmengine.hooks import CheckpointHook
    hooks = runner.hooks  # the runner's own list, in priority order
    cfg = ((getattr(runner, 'cfg', None) or {}).get('default_hooks') or {}).get('checkpoint')
    for i, hook in enumerate(hooks):
        if type(hook) is not CheckpointHook:
            continue
        if not isinstance(cfg, dict):
            return False  # given as an object: its arguments cannot be read back
        # '_scope_' comes with hooks of mmdet/mmseg package bases: a registry key, not an argument
        args = {k: v for k, v in dict(cfg).items() if k not in ('type', '_scope_')}
        atomic = AtomicCheckpointHook(**args)
        atomic.priority = hook.priority
        hooks[i] = atomic
        return True
    return False
