"""Pre-flight check of a classification distiller's teacher: is it any good on the data it is
about to teach on, fed exactly as training feeds it?

A teacher that was trained with another normalisation (``teacher_norm`` missing or wrong), at
another input size, or whose checkpoint is not the trained one loads without any error and
then teaches noise for the whole run; the damage shows only as a poor student at the end.
Evaluating it on a few hundred validation images costs a second and names the problem.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from mmkd.models.normalization import preprocessor_norm
from mmkd.registry import HOOKS


class TeacherCheckError(RuntimeError):
    """The teacher failed :class:`TeacherCheckHook`'s check."""


@HOOKS.register_module()
class TeacherCheckHook(Hook):
    """Before the first training iteration, evaluate a classification distiller's teacher on
    the first ``num_samples`` validation images; log its top-1 and stop the run with a
    :class:`TeacherCheckError` naming the likely causes if it is

    - below ``min_chance_ratio`` times chance (``100 / num_classes`` %), or
    - below ``expected_top1 - margin`` (when ``expected_top1``, the teacher's known top-1 in %
      on this validation set, is given).

    The images go through the validation pipeline, then the distiller's data preprocessor
    (normalisation; no batch augments, they would mix the labels) and the teacher's own
    re-normalisation (``teacher_norm``), channels-last and autocast settings: what the
    teacher sees in training, up to the random augmentation.

    It is one of mmkd's default hooks (``configs/_base_/default_runtime.py``:
    ``default_hooks.teacher_check``), so every mmkd config has it. Set
    ``default_hooks.teacher_check.enabled=False`` to switch it off, or
    ``default_hooks.teacher_check.expected_top1=73.3`` to also compare with a known accuracy.
    Skipped, with a log line saying why: models that are not classification distillers, no
    teacher checkpoint (``teacher_ckpt=None``: a random smoke-test teacher), a teacher-logit
    cache (the teacher does not run in training), no validation dataloader. Randomness is
    untouched: the RNG states are restored afterwards, so runs with and without the check
    train identically.

    Args:
        num_samples (int): validation images evaluated (the first ones). Default 256.
        min_chance_ratio (float): the floor, as a multiple of chance. Default 1.5.
        expected_top1 (float, optional): the teacher's known top-1 (%) on this validation set.
        margin (float): points below ``expected_top1`` still accepted: ``num_samples`` images
            estimate top-1 only to a few points (2.5 standard error at 80 % on 256 images),
            and the first images of a set need not be typical. Default 10.
        enabled (bool): run the check at all. Default True.
    """
    priority = 'NORMAL'

    def __init__(self,
                 num_samples: int = 256,
                 min_chance_ratio: float = 1.5,
                 expected_top1: Optional[float] = None,
                 margin: float = 10.0,
                 enabled: bool = True):
        if num_samples < 1:
            raise ValueError(f'TeacherCheckHook: num_samples must be >= 1, got {num_samples}')
        if expected_top1 is not None and not 0 < expected_top1 <= 100:
            raise ValueError('TeacherCheckHook: expected_top1 is a top-1 accuracy in % '
                             f'(0, 100], got {expected_top1}')
        self.num_samples = int(num_samples)
        self.min_chance_ratio = float(min_chance_ratio)
        self.expected_top1 = None if expected_top1 is None else float(expected_top1)
        self.margin = float(margin)
        self.enabled = bool(enabled)
        #: the last check's measured top-1 (%), None when it was skipped
        self.top1: Optional[float] = None

    def before_train(self, runner) -> None:
        self.top1 = None
        if not self.enabled:
            return
        from mmkd.models.distillers import ClassificationDistiller
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, ClassificationDistiller):
            return  # a plain model (e.g. a teacher being trained): nothing to check
        skip = None
        if not model.teacher_source.runs_teacher:
            skip = 'the teacher does not run in training (teacher-logit cache)'
        elif model.teacher_ckpt is None:
            skip = 'teacher_ckpt=None: the teacher is randomly initialised (a smoke test)'
        loop = runner.val_loop if skip is None else None  # built on first use
        if skip is None and not (isinstance(loop, BaseLoop) and loop.dataloader is not None):
            skip = 'no validation dataloader to check it on'
        if skip is not None:
            runner.logger.info(f'TeacherCheckHook: teacher check skipped: {skip}')
            return
        # the check must not shift the random streams training draws from
        states = random.getstate(), np.random.get_state()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            try:
                correct, total, shape, num_classes = self._evaluate(model, loop.dataloader)
            finally:
                random.setstate(states[0])
                np.random.set_state(states[1])
        self.top1 = top1 = 100.0 * correct / total
        chance = 100.0 / num_classes
        floor = self.min_chance_ratio * chance
        runner.message_hub.update_info('teacher_check/top1', top1)
        where = (f'on the first {total} validation images (inputs {shape} through the '
                 "distiller's data preprocessor and teacher_norm, as in training)")
        problems = []
        if top1 < floor:
            problems.append(f'near chance ({chance:.2f} % for {num_classes} classes; the '
                            f'check asks for >= {self.min_chance_ratio:g} x chance = '
                            f'{floor:.2f} %)')
        if self.expected_top1 is not None and top1 < self.expected_top1 - self.margin:
            problems.append(f'below its expected {self.expected_top1:.2f} % minus the margin '
                            f'of {self.margin:g} points')
        if not problems:
            expected = (f', expected {self.expected_top1:.2f} %' if self.expected_top1
                        is not None else '')
            runner.logger.info(f'TeacherCheckHook: teacher top-1 {top1:.2f} % {where} '
                               f'(chance {chance:.2f} %{expected}): OK')
            return
        raise TeacherCheckError(
            f'TeacherCheckHook: the teacher scores {top1:.2f} % top-1 {where}: '
            + ' and '.join(problems) + '. A teacher this far off would teach noise; nothing '
            'was trained. Likely causes:\n' + self._causes(model, shape, num_classes)
            + '\nSwitch the check off with default_hooks.teacher_check.enabled=False, or '
            'change its bounds (default_hooks.teacher_check.min_chance_ratio / '
            'expected_top1 / margin).')

    def _evaluate(self, model, dataloader):
        """Correct predictions, images, input shape and classes on the first images."""
        dataset = dataloader.dataset
        n = min(self.num_samples, len(dataset))
        batch_size = dataloader.batch_size or 1
        collate = dataloader.collate_fn
        correct, shape, num_classes = 0, None, None
        # the dataset itself, not the loader: iterating a DataLoader draws a seed from the
        # global RNG, and its workers would be started for a few batches
        for start in range(0, n, batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, n))])
            data = model.data_preprocessor(batch, training=False)
            inputs, samples = data['inputs'], data['data_samples']
            logits = model.teacher_logits(inputs, samples)
            labels = torch.cat([s.gt_label for s in samples]).to(logits.device)
            correct += int((logits.argmax(dim=1) == labels).sum())
            shape = shape or tuple(inputs.shape[1:])
            num_classes = logits.shape[1]
        return correct, n, shape, num_classes

    @staticmethod
    def _causes(model, shape, num_classes) -> str:
        pre = model.data_preprocessor
        own = preprocessor_norm(pre)
        if own is not None:
            norm = (f'mean={[round(v, 3) for v in own[0].tolist()]}, '
                    f'std={[round(v, 3) for v in own[1].tolist()]}')
        else:
            norm = 'no normalisation'
        teacher_norm = (f'teacher_norm={model.teacher_norm}' if model.teacher_norm is not None
                        else "no teacher_norm: the teacher gets the student's normalisation")
        return '\n'.join([
            f"  - normalisation: the data preprocessor gives {norm}, {teacher_norm}. A teacher "
            'trained with another mean/std (or channel order) needs model.teacher_norm='
            'dict(mean=[...], std=[...]) with its own, in the pixel range of the data;',
            f'  - input size: the teacher sees {shape} inputs (C, H, W); one trained at another '
            'resolution or number of channels needs a pipeline that gives it those;',
            f"  - wrong checkpoint: teacher_ckpt='{model.teacher_ckpt}' may not hold the "
            'trained teacher (an early or untrained checkpoint, another dataset, another class '
            f'order than this dataset\'s {num_classes} classes).',
        ])
