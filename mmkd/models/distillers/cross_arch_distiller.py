"""Cross-Architecture KD's training scheme: multi-view student inputs, alternating updates of
the student (+ projectors) and of the discriminator with separate optimizers, noisy evaluation.

The losses themselves are :class:`~mmkd.models.losses.CAKDLoss`, the views
:class:`~mmkd.models.MultiViewGenerator`, the optimizers
:class:`~mmkd.engine.CrossArchOptimWrapperConstructor`, distributed training
:class:`~mmkd.models.wrappers.CrossArchDDP`; how to run: ``docs/cakd.md``.
"""
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from mmkd.registry import MODELS
from ..multi_view import MultiViewGenerator
from ..normalization import preprocessor_norm
from .classification_distiller import ClassificationDistiller

@MODELS.register_module()
class CrossArchDistiller(ClassificationDistiller):
    """Classification distiller with Cross-Architecture KD's robust training scheme.

    - **Multi-view inputs**: in training the student sees ``MultiViewGenerator(inputs)`` (each
      sample transformed with probability 0.5), the teacher the clean batch.
    - **Alternating updates** (paper's Alg. 1): every iteration the student and the projectors
      are updated with the ``student`` optimizer on the distiller's losses (the adversarial term
      L_MVG included); on iterations ``i % d_interval == 0`` (0-based, so the first one too) the
      discriminators of the losses that have one are updated with the ``discriminator``
      optimizer on ``L_MAD``, computed on the (detached) tokens of that iteration's student step.
      Needs ``optim_wrapper=dict(constructor='CrossArchOptimWrapperConstructor',
      student=dict(optimizer=...), discriminator=dict(optimizer=...))``.
      The iteration count is the persistent buffer ``train_iter``, so a resumed run keeps the
      discriminator's schedule. Distributed: :class:`~mmkd.models.wrappers.CrossArchDDP`.
    - **Noisy evaluation** (``noisy_eval=dict(...)``, MultiViewGenerator arguments, ``prob``
      defaulting to 1): val/test also predict on transformed images and store them as
      ``noisy_pred_score``/``noisy_pred_label``, reported by
      ``dict(type='PredFieldMetric', field='noisy', metric=...)`` as ``noisy/...``. The
      transforms are drawn from a generator re-seeded with ``seed`` whenever the model enters
      eval mode, so every evaluation sees the same noisy images.

    Args:
        multi_view (dict | None): MultiViewGenerator arguments; ``None`` turns it off.
        noisy_eval (dict | None): see above; default off.
        d_interval (int): update the discriminator every ``d_interval`` iterations. Default 5.
        **kwargs: see :class:`ClassificationDistiller`.
    """

    def __init__(self, *args, multi_view: Optional[dict] = dict(prob=0.5),
                 noisy_eval: Optional[dict] = None, d_interval: int = 5, **kwargs):
        super().__init__(*args, **kwargs)
        if d_interval < 1:
            raise ValueError(f'CrossArchDistiller: d_interval must be >= 1, got {d_interval}')
        self.d_interval = int(d_interval)
        own = preprocessor_norm(self.data_preprocessor)
        norm = dict(mean=own[0], std=own[1]) if own is not None else {}
        self.multi_view = (MultiViewGenerator(**multi_view, **norm)
                           if multi_view is not None else None)
        if noisy_eval is not None:
            noisy_eval = dict(noisy_eval)
            self.noisy_seed = int(noisy_eval.pop('seed', 0))
            self.noisy_view = MultiViewGenerator(**{'prob': 1.0, **noisy_eval}, **norm)
        else:
            self.noisy_view = None
        self._noisy_generator: Optional[torch.Generator] = None
        self.register_buffer('train_iter', torch.zeros((), dtype=torch.long))
        self._in_train_step = False
        # The discriminators have their own optimizer and DDP reducer, so they are children of
        # the distiller, beside the student, not of the losses: a loss keeps an unregistered
        # reference to its own (as DistillLoss.bind does for the teacher's parts).
        self.discriminators = nn.ModuleDict()
        for name, loss in self.distill_losses.items():
            d = getattr(loss, 'discriminator', None)
            if isinstance(d, nn.Module) and callable(getattr(loss, 'discriminator_loss', None)):
                delattr(loss, 'discriminator')
                loss.bind('discriminator', d)
                self.discriminators[name] = d
        self.register_load_state_dict_pre_hook(_discriminator_keys_of_older_checkpoints)

    # -- parts ----------------------------------------------------------------------------
    def adversarial_losses(self) -> Dict[str, nn.Module]:
        """The distillation losses with a discriminator (``discriminator_loss``)."""
        return {name: self.distill_losses[name] for name in self.discriminators}

    def update_steps(self) -> Dict[str, 'UpdateStep']:
        """Each update as a module of the children it trains, under the distiller's names:
        ``student`` (every child but the discriminators: the student, the losses' projectors;
        its forward is :meth:`forward`) and, when a loss has one, ``discriminator``
        (``discriminators``; its forward is :meth:`discriminator_loss`). The one split of the
        parameters between the two updates: the optimizer constructor builds an optimizer on
        each, :class:`~mmkd.models.wrappers.CrossArchDDP` a DDP reducer over each."""
        steps = dict(student=UpdateStep({n: m for n, m in self.named_children()
                                         if n != 'discriminators'}, self.forward))
        if len(self.discriminators):
            steps['discriminator'] = UpdateStep(dict(discriminators=self.discriminators),
                                                self.discriminator_loss)
        covered = {id(p) for step in steps.values() for p in step.parameters()}
        left = [n for n, p in self.named_parameters() if p.requires_grad and id(p) not in covered]
        if left:
            raise ValueError(f'{type(self).__name__}: trainable parameters outside the student '
                             f'and discriminator updates: {left}')
        return steps

    # -- inputs ---------------------------------------------------------------------------
    def student_inputs(self, inputs: Tensor) -> Tensor:
        if self.training and self.multi_view is not None:
            return self.multi_view(inputs)
        return inputs

    def loss(self, inputs: Tensor, data_samples: List) -> Dict[str, Tensor]:
        if (self.training and not self._in_train_step and dist.is_available()
                and dist.is_initialized() and dist.get_world_size() > 1):
            raise RuntimeError(
                'CrossArchDistiller trains through its own train_step (two optimizers, '
                'alternating updates), but a model wrapper called its loss directly. For '
                'distributed training set '
                "model_wrapper_cfg=dict(type='mmkd.models.wrappers.CrossArchDDP')")
        return super().loss(inputs, data_samples)

    def discriminator_loss(self) -> Tensor:
        """Sum of the discriminators' L_MAD on the last student step's (detached) tokens."""
        return sum(loss.discriminator_loss() for loss in self.adversarial_losses().values())

    # -- the step -------------------------------------------------------------------------
    def _wrappers(self, optim_wrapper) -> Tuple[OptimWrapper, Optional[OptimWrapper]]:
        needs_d = bool(self.adversarial_losses())
        if isinstance(optim_wrapper, OptimWrapperDict):
            names = set(optim_wrapper.optim_wrappers)
            if not names <= {'student', 'discriminator'} or 'student' not in names or (
                    needs_d and 'discriminator' not in names):
                raise KeyError(f'CrossArchDistiller: optimizer wrappers {sorted(names)}, '
                               "expected 'student' and 'discriminator'")
            return optim_wrapper['student'], (optim_wrapper['discriminator'] if needs_d else None)
        if needs_d:
            raise TypeError(
                'CrossArchDistiller updates the student and the discriminator with separate '
                "optimizers: set optim_wrapper=dict(constructor='CrossArchOptimWrapperConstructor',"
                ' student=dict(optimizer=...), discriminator=dict(optimizer=...))')
        return optim_wrapper, None

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict],
                   steps: Optional[Dict[str, nn.Module]] = None) -> Dict[str, Tensor]:
        """One student update, then (every ``d_interval`` iterations) one discriminator
        update. ``steps``: what runs each update's forward, by default :meth:`update_steps`;
        :class:`~mmkd.models.wrappers.CrossArchDDP` passes a DDP reducer over each, which then
        all-reduces that update's gradients."""
        s_wrapper, d_wrapper = self._wrappers(optim_wrapper)
        steps = steps or self.update_steps()
        it = int(self.train_iter)

        # student + projectors: distillation losses (L_MVG with gradient) + CE
        self._in_train_step = True
        try:
            with s_wrapper.optim_context(steps['student']):
                data = self.data_preprocessor(data, True)
                losses = (steps['student'](**data, mode='loss') if isinstance(data, dict)
                          else steps['student'](*data, mode='loss'))
        finally:
            self._in_train_step = False
        parsed, log_vars = self.parse_losses(losses)
        s_wrapper.update_params(parsed)

        # discriminator: L_MAD on this iteration's detached tokens
        if d_wrapper is not None and it % self.d_interval == 0:
            with d_wrapper.optim_context(steps['discriminator']):
                d_loss = steps['discriminator']()
            d_wrapper.update_params(d_loss)
            # added after parse_losses: logged, not part of the student's total 'loss'
            log_vars['loss_mad'] = d_loss.detach()
        self.train_iter += 1
        return log_vars

    # -- evaluation -----------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        if not mode:
            self._noisy_generator = None  # every evaluation sees the same noisy images
        return self

    def predict(self, inputs: Tensor, data_samples: Optional[List] = None) -> List:
        samples = super().predict(inputs, data_samples)
        if self.noisy_view is not None:
            if self._noisy_generator is None or self._noisy_generator.device != inputs.device:
                self._noisy_generator = torch.Generator(device=inputs.device)
                self._noisy_generator.manual_seed(self.noisy_seed)
            noisy = self.noisy_view(inputs, generator=self._noisy_generator)
            with torch.no_grad():
                logits = self.student(noisy, mode='tensor')
            score = F.softmax(logits, dim=1)
            for sample, s in zip(samples, score):
                sample.set_field(s, 'noisy_pred_score')
                sample.set_field(s.argmax(dim=0, keepdim=True), 'noisy_pred_label')
        return samples


class UpdateStep(nn.Module):
    """One update of :class:`CrossArchDistiller` as a module: the children it trains (shared
    with the distiller, under the same names, so ``paramwise_cfg`` keys match) and a forward
    that computes its loss. A DDP reducer over it syncs exactly that update's parameters."""

    def __init__(self, children: Dict[str, nn.Module], forward: Callable):
        super().__init__()
        for name, module in children.items():
            self.add_module(name, module)
        self.loss_fn = forward

    def forward(self, *args, **kwargs):
        return self.loss_fn(*args, **kwargs)


def _discriminator_keys_of_older_checkpoints(module, state_dict, prefix, *args) -> None:
    """Checkpoints written before the discriminators moved to the distiller hold a discriminator under its loss
    (``distill_losses.<loss>.discriminator.*``); it is ``discriminators.<loss>.*`` now."""
    old = [k for k in state_dict if k.startswith(prefix + 'distill_losses.')
           and '.discriminator.' in k]
    for key in old:
        loss, _, rest = key[len(prefix + 'distill_losses.'):].partition('.discriminator.')
        state_dict[f'{prefix}discriminators.{loss}.{rest}'] = state_dict.pop(key)
    if old:
        MMLogger.get_current_instance().info(
            f'{len(old)} discriminator entries of an older checkpoint read as '
            "'discriminators.<loss>.*'")
