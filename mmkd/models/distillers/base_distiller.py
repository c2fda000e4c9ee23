"""What every distiller shares: building and freezing the teacher, feature taps, running the
distillation losses. Task distillers (classification, segmentation) add only how each model is
run and which data sources exist."""
import copy
import inspect
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Type, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from torch import Tensor

from mmkd.registry import MODELS
from ..builder import CheckpointSpec, ModelSpec, build_model, load_teacher_checkpoint
from ..losses.base import DistillLoss
from ..nan_guard import NonFiniteLossGuard
from ..taps import FeatureTaps, TapSpec
from ..teacher_source import OnlineTeacher, TeacherSource

_REQUIRED = object()


class BaseDistiller(BaseModel):
    """Student + frozen teacher + distillation losses.

    The teacher is deliberately *not* a registered sub-module: it is then absent from
    ``parameters()`` (so from the optimizer and from DDP's gradient sync), from ``state_dict()``
    (so never saved in checkpoints) and from the runner's ``init_weights`` (which would otherwise
    re-initialise loaded weights). It lives in :attr:`teacher_source`
    (:class:`~mmkd.models.teacher_source.OnlineTeacher`: the frozen network run on each batch;
    a subclass may pass another source, e.g. ClassificationDistiller's logit cache), which
    ``_apply`` moves with the distiller (``.to``, ``.cuda``) and ``train()`` keeps in eval mode.

    Args:
        student, teacher: model config dict, local config path, mmpretrain package config
            (``'mmpretrain::...'``) or mmpretrain model name.
        teacher_ckpt (str | dict | None): the teacher's checkpoint: a local path, an
            ``http(s)://`` URL (downloaded once into the torch hub cache,
            ``$TORCH_HOME/hub/checkpoints``) or ``'pretrained'`` (the weights mmpretrain's
            model index lists for ``teacher``, an mmpretrain model name);
            ``dict(path=..., prefix='student.')`` loads only the keys under ``prefix`` (the
            student of a distillation checkpoint as the teacher; without it, such a
            checkpoint is an error saying to export the student first). A damaged file is an
            error naming it. Required; ``None`` only explicitly (smoke tests), with a loud
            warning.
        distill_losses (dict): ``name -> loss config``; names start with ``loss_`` so MMEngine
            sums and logs them.
        student_taps, teacher_taps (dict): ``name -> module path`` (or
            ``dict(path=..., io='input'|'output')``) captured by forward hooks.
        student_loss_weight (float): weight of the student's own task loss.
        teacher_autocast (str | None): ``'bfloat16'`` or ``'float16'``: run the teacher under
            ``torch.autocast`` in that dtype (its captured features are cast back to float32
            for the losses). Under ``--amp`` the whole step, teacher included, is autocast
            anyway; this casts only the teacher. Default: off.
        compile_teacher (bool | dict): ``torch.compile`` the teacher (``dict``: compile
            options, e.g. ``dict(mode='max-autotune')``); its feature taps keep working.
        channels_last (bool): both models and their inputs in ``torch.channels_last`` memory
            format, faster for CNNs (convolutions) on GPUs and recent CPUs.
        nan_guard (dict | None): what a non-finite (NaN/Inf) task or distillation loss does;
            see :class:`~mmkd.models.nan_guard.NonFiniteLossGuard`. Default
            ``dict(action='raise')``: the run stops at that iteration, before the step
            updates anything, with an error naming the loss, the iteration and its last
            finite value. ``dict(action='skip', max_skips=N)``: such steps are dropped (no
            update, gradients zeroed), logged and counted (``nan_skips``), up to N. ``None``:
            off. The check runs in :meth:`parse_losses`, which every train step calls once
            (see :mod:`mmkd.models.nan_guard` for why there).
        teacher_source (type | None): for subclasses whose teacher records do not come from
            running the teacher: a :class:`~mmkd.models.teacher_source.TeacherSource` class
            built as ``teacher_source(teacher_module_or_None)``; ``teacher`` may then be
            ``None``. Default: :class:`~mmkd.models.teacher_source.OnlineTeacher`.
    """
    #: taps every distiller of this task has, e.g. the classifier's logits
    builtin_taps: Dict[str, str] = {}
    #: sources ``data.<name>`` this task provides
    data_sources: tuple = ()
    #: registry scope the student and teacher are built in (``'mmseg'`` for segmentors); mmkd's
    #: registries are children of mmpretrain's, so ``'mmkd'`` covers mmpretrain models
    model_scope: str = 'mmkd'

    def __init__(self,
                 student: ModelSpec,
                 teacher: ModelSpec,
                 teacher_ckpt: Optional[CheckpointSpec] = _REQUIRED,
                 distill_losses: Optional[dict] = None,
                 student_taps: Optional[Dict[str, TapSpec]] = None,
                 teacher_taps: Optional[Dict[str, TapSpec]] = None,
                 student_loss_weight: float = 1.0,
                 teacher_autocast: Optional[str] = None,
                 compile_teacher: Union[bool, dict] = False,
                 channels_last: bool = False,
                 nan_guard: Optional[dict] = dict(action='raise'),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 teacher_source: Optional[Type[TeacherSource]] = None):
        if isinstance(data_preprocessor, dict):
            # built here, in the mmkd scope, so mmpretrain's preprocessors resolve also
            # without a runner's default scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if teacher is None:
            if teacher_source is None:
                raise ValueError(f'{type(self).__name__} needs a teacher')
            teacher_ckpt = None if teacher_ckpt is _REQUIRED else teacher_ckpt
        elif teacher_ckpt is _REQUIRED:
            raise ValueError('the distiller needs teacher_ckpt: the path of the teacher\'s '
                             'checkpoint (teacher_ckpt=None only for smoke tests)')
        if teacher_autocast not in (None, 'bfloat16', 'float16'):
            raise ValueError("teacher_autocast must be None, 'bfloat16' or 'float16', got "
                             f'{teacher_autocast!r}')
        self.teacher_autocast = teacher_autocast
        self.channels_last = bool(channels_last)
        self.nan_guard = NonFiniteLossGuard.build(nan_guard)
        if (self.nan_guard is not None and self.nan_guard.action == 'skip'
                and type(self).train_step is not BaseDistiller.train_step):
            # a train step of its own (CrossArchDistiller: two optimizers, the discriminator
            # updated on the tokens of the same forward) calls parse_losses, so 'raise' guards
            # it, but only this class's train_step knows how to leave a step out
            raise ValueError(f"nan_guard action='skip' needs BaseDistiller's train_step, but "
                             f'{type(self).__name__} runs its own: use '
                             "nan_guard=dict(action='raise') (which guards it) or None")
        self._skip_step = False
        # None: a random (smoke-test) teacher or a logit cache; read by TeacherCheckHook
        self.teacher_ckpt = teacher_ckpt
        self.student = build_model(student, 'student', scope=self.model_scope)
        module = None if teacher is None else self._build_teacher(teacher, teacher_ckpt)
        # a plain object, not a sub-module: the teacher stays out of parameters() and
        # state_dict()
        self.teacher_source = (
            OnlineTeacher(module, {**self._builtin_taps(module), **(teacher_taps or {})},
                          teacher_autocast)
            if teacher_source is None else teacher_source(module))
        self.student_loss_weight = student_loss_weight

        self.student_taps = FeatureTaps(
            self.student, {**self._builtin_taps(self.student), **(student_taps or {})}, 'student')

        self.distill_losses = nn.ModuleDict()
        for name, cfg in (distill_losses or {}).items():
            if not name.startswith('loss_'):
                raise ValueError(f"distill_losses: name '{name}' must start with 'loss_' "
                                 '(MMEngine sums and logs only keys containing "loss")')
            loss = MODELS.build(cfg) if isinstance(cfg, dict) else cfg
            if not isinstance(loss, DistillLoss):
                raise TypeError(f"distill_losses['{name}'] is a {type(loss).__name__}, "
                                'not a DistillLoss')
            loss.name = name
            self.distill_losses[name] = loss
        if not self.teacher_source.runs_teacher:
            # a logit cache: a loss needing teacher features is told so by the sources' check,
            # before its setup would trip over the missing teacher
            for loss in self.distill_losses.values():
                self._resolve_sources(loss)
        # every setup before any sources' check: a setup's error names the model part missing
        for loss in self.distill_losses.values():
            loss.setup(self.student, self.teacher)
        self._loss_args = {name: self._resolve_sources(loss)
                           for name, loss in self.distill_losses.items()}
        # the teacher records some loss reads: each must be there at every step
        self.teacher_source.required = sorted({key for args in self._loss_args.values()
                                               for kind, key in args.values() if kind == 'teacher'})
        self._inputs_checked = False

        if self.channels_last:
            self.student.to(memory_format=torch.channels_last)
            if self.teacher is not None:
                self.teacher.to(memory_format=torch.channels_last)
        if compile_teacher and self.teacher_source.runs_teacher:
            # in place (nn.Module.compile): names, state and hooks stay those of the module
            self.teacher.compile(**(compile_teacher if isinstance(compile_teacher, dict)
                                    else {}))

    # -- building -------------------------------------------------------------------------
    def _build_teacher(self, spec: ModelSpec, ckpt: Optional[CheckpointSpec]) -> nn.Module:
        teacher = build_model(spec, 'teacher', scope=self.model_scope)
        if ckpt is None:
            msg = ('teacher_ckpt=None: the teacher keeps its RANDOM initialisation and teaches '
                   'noise. Use this only for smoke tests.')
            warnings.warn(msg, stacklevel=3)
            MMLogger.get_current_instance().warning(msg)
            teacher.init_weights()
        else:
            load_teacher_checkpoint(teacher, ckpt, spec)
        teacher.requires_grad_(False)
        return teacher.eval()

    def _builtin_taps(self, model: nn.Module) -> Dict[str, str]:
        return dict(self.builtin_taps)

    def _resolve_sources(self, loss: DistillLoss) -> Dict[str, tuple]:
        """``forward argument -> (kind, key)``, checked against the declared taps now, at build
        time, rather than as a KeyError mid-epoch."""
        resolved = {}
        params = inspect.signature(loss.forward).parameters
        for arg, p in params.items():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            source = loss.inputs.get(arg)
            if source is None:
                if p.default is not p.empty:
                    continue
                raise ValueError(f"{type(loss).__name__} '{loss.name}' needs input '{arg}': "
                                 f"set inputs=dict({arg}='student.<tap>' | 'teacher.<tap>')")
            kind, _, key = source.partition('.')
            teacher_paths = self.teacher_source.paths
            available = {'student': self.student_taps.paths, 'teacher': teacher_paths,
                         'data': dict.fromkeys(self.data_sources)}.get(kind)
            if available is None or key not in available:
                raise ValueError(
                    f"{type(loss).__name__} '{loss.name}': input '{arg}' comes from unknown "
                    f"source '{source}'. Known: "
                    + ', '.join([f'student.{t}' for t in self.student_taps.paths]
                                + [f'teacher.{t}' for t in teacher_paths]
                                + [f'data.{d}' for d in self.data_sources])
                    + (f'. The teacher is read from {self.teacher_source.kind} '
                       f'({type(self.teacher_source).__name__}), which holds only '
                       f'{sorted(teacher_paths)}' if kind == 'teacher'
                       and not self.teacher_source.runs_teacher else ''))
            resolved[arg] = (kind, key)
        return resolved

    @property
    def loss_args(self) -> Dict[str, Dict[str, tuple]]:
        """What each distillation loss is called with, as resolved at build time:
        ``loss name -> {forward argument: (kind, key)}``, kind ``student``/``teacher`` (a tap)
        or ``data``. Read-only: for tools that reproduce the step (the speed benchmark)."""
        return copy.deepcopy(self._loss_args)

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The frozen teacher network (``None`` when the source needs none, e.g. a logit
        cache)."""
        return self.teacher_source.module

    @property
    def teacher_taps(self) -> FeatureTaps:
        return self.teacher_source.taps

    # -- teacher stays frozen -------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher_source.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher_source.apply(fn, *args, **kwargs)
        return self

    # -- what task distillers provide -----------------------------------------------------
    def teacher_forward(self, inputs: Tensor, data_samples) -> None:
        """Run the teacher once (taps record what the losses need)."""
        raise NotImplementedError

    def student_loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """Run the student once and return its own task losses."""
        raise NotImplementedError

    def data_inputs(self, data_samples, t_records: Dict[str, object]) -> Dict[str, Tensor]:
        """The ``data.*`` sources of the losses for this batch (``t_records``: the teacher's
        taps, for sources derived from the teacher's predictions)."""
        return {}

    def student_inputs(self, inputs: Tensor) -> Tensor:
        """What the student sees; the teacher always sees the clean ``inputs``. Identity here;
        e.g. Cross-Architecture KD feeds the student multi-view transformed images."""
        return inputs

    # -- the step -------------------------------------------------------------------------
    def teacher_records(self, inputs: Tensor, data_samples) -> Dict[str, object]:
        """The teacher's records for this batch, from :attr:`teacher_source` (for the online
        teacher: one frozen forward pass)."""
        return self.teacher_source.records(self.teacher_forward, inputs, data_samples)

    def format_inputs(self, inputs: Tensor) -> Tensor:
        """A preprocessed batch in the models' memory format (``channels_last`` when set):
        every path that runs a model on a batch (the step, the teacher check, the logit cache's
        writer) goes through it."""
        if self.channels_last and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def loss(self, inputs: Tensor, data_samples: List) -> Dict[str, Tensor]:
        inputs = self.format_inputs(inputs)
        t_records = self.teacher_records(inputs, data_samples)
        with self.student_taps.recording() as s_records:
            student_losses = self.student_loss(self.student_inputs(inputs), data_samples)
        losses = {k: v * self.student_loss_weight if 'loss' in k else v
                  for k, v in student_losses.items()}
        records = dict(student=s_records, teacher=t_records,
                       data=self.data_inputs(data_samples, t_records))
        for name, loss in self.distill_losses.items():
            kwargs = {arg: records[kind][key] for arg, (kind, key) in self._loss_args[name].items()}
            if not self._inputs_checked:
                loss.check_inputs(**kwargs)
            losses[name] = loss(**kwargs) * (loss.loss_weight * loss.weight_scale)
            # MMEngine sums every key containing 'loss': parts are logged without that word
            for part, value in loss.log_vars.items():
                losses[f'{name[len("loss_"):]}.{part}'] = value.detach()
        self._inputs_checked = True
        return losses

    # -- non-finite losses ---------------------------------------------------------------
    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """MMEngine's sum of the losses, checked by the NaN guard (``nan_guard``).

        Every train step calls this once per iteration between the forward pass and the
        update: ``BaseModel``'s and this class's :meth:`train_step`, MMEngine's DDP wrapper,
        ``CrossArchDistiller.train_step``. A non-finite loss then raises here, before any
        parameter changes, whichever of them runs. For a step the guard skips, this marks it
        (:meth:`train_step` then does not update) and, for callers that update anyway (a DDP
        wrapper's own train step), returns a zero loss that reaches no parameter, with every
        gradient set to None: torch's optimizers leave a parameter without a gradient
        untouched (no weight decay, no momentum). The non-finite values are left out of the
        returned log (the warning names them), so the smoothed logged losses stay readable.

        Covered: every key with 'loss' in it, i.e. the student's task losses (times
        ``student_loss_weight``) and each distillation loss, and their sum. In
        CrossArchDistiller's step, the student update's losses; its discriminator loss
        ``loss_mad`` is computed after this call and is not checked.
        """
        parsed, log_vars = super().parse_losses(losses)
        self._skip_step = False
        guard = self.nan_guard
        if guard is None or not isinstance(parsed, Tensor):
            return parsed, log_vars
        if guard.check(log_vars):
            if guard.skips:
                log_vars['nan_skips'] = torch.tensor(float(guard.skips), device=parsed.device)
            return parsed, log_vars
        self._skip_step = True
        self.zero_grad(set_to_none=True)
        kept = OrderedDict((k, v) for k, v in log_vars.items()
                           if not (isinstance(v, Tensor) and not bool(torch.isfinite(v).all())))
        kept['nan_skips'] = torch.tensor(float(guard.skips), device=parsed.device)
        # a fresh leaf: a backward() of it is valid and reaches no parameter
        return parsed.detach().new_zeros(()).requires_grad_(), kept

    def train_step(self, data: Union[dict, tuple, list], optim_wrapper) -> Dict[str, Tensor]:
        """MMEngine's train step (forward under the optimizer wrapper's context, parse the
        losses, update), except that a step the NaN guard skips is not handed to the optimizer
        wrapper at all: no backward, no optimizer step, no change to its counters; the
        gradients are zeroed."""
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        if self._skip_step:
            optim_wrapper.zero_grad()
        else:
            optim_wrapper.update_params(parsed)
        return log_vars

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student(inputs, mode='tensor')
        raise RuntimeError(f'Invalid mode "{mode}".')

