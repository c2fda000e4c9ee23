"""Cross-Architecture KD's training scheme: multi-view student inputs, alternating updates of
the student (+ projectors) and of the discriminator with separate optimizers, noisy evaluation.

The losses themselves are :class:`~mmkd.models.losses.CAKDLoss`; how to run: ``docs/cakd.md``.
"""
import math
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from mmkd.registry import MODEL_WRAPPERS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from .classification_distiller import ClassificationDistiller

_GREY_RGB = (0.299, 0.587, 0.114)


class MultiViewGenerator(nn.Module):
    """The paper's multi-view generator (Eq. 7) as tensor ops on a preprocessed batch.

    Each sample is transformed with probability ``prob`` (else returned unchanged). A
    transformed sample gets, each with its own random magnitude:

    1. a random resized crop (area fraction in ``crop_scale``, aspect ratio in ``crop_ratio``)
       rotated by an angle in ``[-rotation, rotation]`` degrees, resampled bilinearly back to
       the input size (outside the image: the mean colour);
    2. colour jitter in pixel space: brightness, contrast, saturation factors drawn from
       ``[1 - x, 1 + x]`` (saturation only for 3-channel RGB input);
    3. Gaussian noise of std ``noise_std`` (pixel units, 0..255), then clipping to 0..255;
    4. a patch mask: the image is cut into a ``mask_grid x mask_grid`` grid of cells and each
       cell is set to the mean colour (0 after normalisation) with probability ``mask_ratio``.

    A strength of 0 (or ``None``) switches that transform off. ``mean``/``std`` are the data
    preprocessor's normalisation (pixel = x * std + mean); without them the input is taken as
    pixels. ``last_selected`` (B,) bool holds which samples the last call transformed.

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self,
                 prob: float = 0.5,
                 crop_scale: Optional[Sequence[float]] = (0.5, 1.0),
                 crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
                 rotation: float = 15.0,
                 brightness: float = 0.4,
                 contrast: float = 0.4,
                 saturation: float = 0.4,
                 noise_std: float = 10.0,
                 mask_grid: int = 8,
                 mask_ratio: float = 0.25,
                 mean: Optional[Tensor] = None,
                 std: Optional[Tensor] = None):
        super().__init__()
        if not 0 <= prob <= 1:
            raise ValueError(f'MultiViewGenerator: prob must be in [0, 1], got {prob}')
        self.prob = float(prob)
        self.crop_scale = tuple(crop_scale) if crop_scale else None
        self.crop_ratio = tuple(crop_ratio)
        self.rotation = float(rotation or 0)
        self.brightness = float(brightness or 0)
        self.contrast = float(contrast or 0)
        self.saturation = float(saturation or 0)
        self.noise_std = float(noise_std or 0)
        self.mask_grid = int(mask_grid or 0)
        self.mask_ratio = float(mask_ratio or 0)
        # not persistent: the normalisation belongs to the data preprocessor, not the state
        self.register_buffer('mean', None if mean is None else mean.reshape(1, -1, 1, 1).float(),
                             persistent=False)
        self.register_buffer('std', None if std is None else std.reshape(1, -1, 1, 1).float(),
                             persistent=False)
        self.last_selected: Optional[Tensor] = None

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        B = x.shape[0]
        selected = self._rand(B, device=x.device, generator=generator) < self.prob
        self.last_selected = selected
        if not bool(selected.any()):
            return x
        out = self.transform(x, generator)
        return torch.where(selected[:, None, None, None], out, x)

    @staticmethod
    def _rand(*shape, device, generator) -> Tensor:
        return torch.rand(shape, device=device, generator=generator)

    def _uniform(self, low: float, high: float, n: int, x: Tensor, generator) -> Tensor:
        return low + (high - low) * self._rand(n, device=x.device, generator=generator)

    def transform(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """Every sample transformed (the random choice per sample is :meth:`forward`'s)."""
        B, C, H, W = x.shape
        dtype = x.dtype
        x = x.float()
        # 1. crop + rotation: one affine resampling per sample (in normalised space, so that
        # grid_sample's zero padding is the mean colour)
        if self.crop_scale or self.rotation:
            cw = ch = x.new_ones(B)
            cx = cy = x.new_zeros(B)
            if self.crop_scale:
                area = self._uniform(*self.crop_scale, B, x, generator)
                log_r = self._uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]),
                                      B, x, generator)
                cw = (area * log_r.exp()).sqrt().clamp(max=1.0)
                ch = (area / log_r.exp()).sqrt().clamp(max=1.0)
                cx = (2 * self._rand(B, device=x.device, generator=generator) - 1) * (1 - cw)
                cy = (2 * self._rand(B, device=x.device, generator=generator) - 1) * (1 - ch)
            angle = self._uniform(-self.rotation, self.rotation, B, x, generator) * math.pi / 180
            cos, sin = angle.cos(), angle.sin()
            theta = torch.stack([torch.stack([cw * cos, -ch * sin, cx], dim=1),
                                 torch.stack([cw * sin, ch * cos, cy], dim=1)], dim=1)
            grid = F.affine_grid(theta, (B, C, H, W), align_corners=False)
            x = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
        # 2. + 3. colour and noise, in pixels
        p = x if self.mean is None else x * self.std + self.mean
        if self.brightness:
            p = p * self._uniform(1 - self.brightness, 1 + self.brightness, B, x,
                                  generator).view(B, 1, 1, 1)
        if self.contrast:
            c = self._uniform(1 - self.contrast, 1 + self.contrast, B, x,
                              generator).view(B, 1, 1, 1)
            m = self._grey(p).mean(dim=(1, 2, 3), keepdim=True)
            p = (p - m) * c + m
        if self.saturation and C == 3:
            s = self._uniform(1 - self.saturation, 1 + self.saturation, B, x,
                              generator).view(B, 1, 1, 1)
            g = self._grey(p)
            p = (p - g) * s + g
        p = p.clamp(0, 255)
        if self.noise_std:
            noise = torch.randn(p.shape, device=p.device, generator=generator)
            p = (p + self.noise_std * noise).clamp(0, 255)
        x = p if self.mean is None else (p - self.mean) / self.std
        # 4. patch mask
        if self.mask_grid and self.mask_ratio:
            g = self.mask_grid
            cells = (self._rand(B, 1, g, g, device=x.device, generator=generator)
                     < self.mask_ratio).float()
            # 0 is the mean colour after normalisation (black for un-normalised input)
            x = x * (1 - F.interpolate(cells, size=(H, W), mode='nearest'))
        return x.to(dtype)

    @staticmethod
    def _grey(p: Tensor) -> Tensor:
        if p.shape[1] == 3:
            w = p.new_tensor(_GREY_RGB).view(1, 3, 1, 1)
            return (p * w).sum(dim=1, keepdim=True)
        return p.mean(dim=1, keepdim=True)


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
      discriminator's schedule. Distributed: :class:`CrossArchDDP`.
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
        pre = self.data_preprocessor
        norm = (dict(mean=pre.mean.flatten(), std=pre.std.flatten())
                if getattr(pre, '_enable_normalize', False) else {})
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

    # -- parts ----------------------------------------------------------------------------
    def adversarial_losses(self) -> Dict[str, nn.Module]:
        """The distillation losses that own a discriminator (``discriminator_loss``)."""
        return {name: loss for name, loss in self.distill_losses.items()
                if callable(getattr(loss, 'discriminator_loss', None))
                and isinstance(getattr(loss, 'discriminator', None), nn.Module)}

    def discriminators(self) -> List[nn.Module]:
        return [loss.discriminator for loss in self.adversarial_losses().values()]

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
                "model_wrapper_cfg=dict(type='mmkd.models.distillers.CrossArchDDP')")
        return super().loss(inputs, data_samples)

    def discriminator_loss(self) -> Tensor:
        """Sum of the discriminators' L_MAD on the last student step's (detached) tokens."""
        return sum(loss.discriminator_loss() for loss in self.adversarial_losses().values())

    def forward(self, inputs: Optional[Tensor] = None, data_samples=None, mode: str = 'tensor'):
        # 'discriminator': the discriminator step's loss, as a forward so that a DDP wrapper
        # all-reduces its gradients
        if mode == 'discriminator':
            return self.discriminator_loss()
        return super().forward(inputs, data_samples, mode)

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
                   model: Optional[nn.Module] = None,
                   discriminator_model: Optional[nn.Module] = None) -> Dict[str, Tensor]:
        """One student update, then (every ``d_interval`` iterations) one discriminator
        update. ``model``: what runs the student update's forward, the distiller itself or a
        DDP wrapper of it (which then all-reduces that update's gradients);
        ``discriminator_model``: the same for the discriminator update, default ``model``.
        :class:`CrossArchDDP` passes one DDP reducer per update."""
        s_wrapper, d_wrapper = self._wrappers(optim_wrapper)
        model = self if model is None else model
        d_model = model if discriminator_model is None else discriminator_model
        it = int(self.train_iter)

        # student + projectors: distillation losses (L_MVG with gradient) + CE
        self._in_train_step = True
        try:
            with s_wrapper.optim_context(model):
                data = self.data_preprocessor(data, True)
                losses = (model(**data, mode='loss') if isinstance(data, dict)
                          else model(*data, mode='loss'))
        finally:
            self._in_train_step = False
        parsed, log_vars = self.parse_losses(losses)
        s_wrapper.update_params(parsed)
        adversarial = self.adversarial_losses()

        # discriminator: L_MAD on this iteration's detached tokens
        if adversarial and it % self.d_interval == 0:
            with d_wrapper.optim_context(d_model):
                d_loss = d_model(mode='discriminator')
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
            self.student_taps.pop()
            score = F.softmax(logits, dim=1)
            for sample, s in zip(samples, score):
                sample.set_field(s, 'noisy_pred_score')
                sample.set_field(s.argmax(dim=0, keepdim=True), 'noisy_pred_label')
        return samples


@MODEL_WRAPPERS.register_module()
class CrossArchDDP(MMDistributedDataParallel):
    """Distributed data parallel for :class:`CrossArchDistiller`:
    ``model_wrapper_cfg=dict(type='mmkd.models.distillers.CrossArchDDP')`` (the full path:
    MMEngine's Runner looks the wrapper up in its root registry, which does not see mmkd's scope).

    MMEngine's DDP wrapper runs its own single-optimizer step; this one runs the distiller's
    alternating step. The two updates train disjoint parameters (the student's forward uses the
    discriminator only through detached parameters, L_MAD only detached tokens), so one reducer
    over all of them would miss half of its gradients in every update and need
    ``find_unused_parameters=True``: an extra autograd traversal per step, and a switch that
    would also hide a parameter that silently never trains. Hence two reducers over the same
    module, each ignoring the other's parameters: this wrapper's own (the student and the
    projectors, and the buffers, synced as by a plain DDP) for the student update, and
    :attr:`discriminator_ddp` (kept outside the module tree, so that state dicts and
    ``modules()`` are those of one DDP) for the discriminator update. Each update then gives
    every parameter of its reducer a gradient, as DDP's default ``find_unused_parameters=False``
    requires; ``model_wrapper_cfg`` arguments (that one too, when set) apply to both reducers.
    """

    def __init__(self, module, detect_anomalous_params: bool = False, **kwargs):
        d_names = self._discriminator_names(module)
        others = self._names(module) - d_names
        user_ignored = set(getattr(module, '_ddp_params_and_buffers_to_ignore', ()))
        with self._ignoring(module, user_ignored | d_names):
            super().__init__(module=module, detect_anomalous_params=detect_anomalous_params,
                             **kwargs)
        d_ddp = None
        if any(p.requires_grad for n, p in module.named_parameters()
               if n in d_names - user_ignored):
            with self._ignoring(module, user_ignored | others):
                d_ddp = DistributedDataParallel(module=module, **kwargs)
        # not a registered sub-module: state_dict(), modules() and .to() stay those of one DDP
        object.__setattr__(self, 'discriminator_ddp', d_ddp)

    @staticmethod
    def _names(module: nn.Module) -> set:
        names = {n for n, _ in module.named_parameters()} | {n for n, _ in module.named_buffers()}
        # DDP names a root module's own parameter '.name' when it builds its reducer
        return names | {f'.{n}' for n in names if '.' not in n}

    @staticmethod
    def _discriminator_names(module: nn.Module) -> set:
        discriminators = getattr(module, 'discriminators', lambda: [])()
        d_ids = {id(m) for d in discriminators for m in d.modules()}
        names = set()
        for prefix, sub in module.named_modules():
            if id(sub) in d_ids:
                names |= {f'{prefix}.{n}' for n, _ in sub.named_parameters(recurse=False)}
                names |= {f'{prefix}.{n}' for n, _ in sub.named_buffers(recurse=False)}
        return names

    @staticmethod
    @contextmanager
    def _ignoring(module: nn.Module, names: set):
        """What a DDP built inside ignores: DDP reads (copies)
        ``module._ddp_params_and_buffers_to_ignore`` in its constructor. Set directly rather
        than by ``DistributedDataParallel._set_params_and_buffers_to_ignore_for_model``, which
        also tags each parameter ``_ddp_ignored`` for good: with two reducers every parameter
        would end up tagged. The user's own setting is restored afterwards."""
        missing = object()
        before = module.__dict__.get('_ddp_params_and_buffers_to_ignore', missing)
        module._ddp_params_and_buffers_to_ignore = sorted(names)
        try:
            yield
        finally:
            if before is missing:
                del module._ddp_params_and_buffers_to_ignore
            else:
                module._ddp_params_and_buffers_to_ignore = before

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper, model=self,
                                      discriminator_model=self.discriminator_ddp)


def _mirror(module: nn.Module, keep: set, drop: set, own_params: bool) -> Optional[nn.Module]:
    """A module tree sharing ``module``'s parameters and names, restricted to the sub-modules
    in ``keep`` (taken whole) minus those in ``drop`` (ids). ``own_params``: also take the
    direct parameters of the containers on the way. None when nothing is left."""
    if id(module) in drop:
        return None
    if id(module) in keep and not any(id(m) in drop for m in module.modules()):
        return module
    node = nn.Module()
    found = False
    if own_params or id(module) in keep:
        for name, param in module.named_parameters(recurse=False):
            node.register_parameter(name, param)
            found = True
    for name, child in module.named_children():
        sub = _mirror(child, keep if id(module) not in keep else keep | {id(child)}, drop,
                      own_params)
        if sub is not None:
            node.add_module(name, sub)
            found = True
    return node if found else None


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CrossArchOptimWrapperConstructor:
    """Two optimizer wrappers for :class:`CrossArchDistiller`: ``student`` for every trainable
    parameter but the discriminators (the student and the projectors), ``discriminator`` for the
    discriminators. Each is built by MMEngine's ``DefaultOptimWrapperConstructor`` on a view
    of the distiller that keeps the parameter names (``paramwise_cfg`` keys match as usual)::

        optim_wrapper = dict(
            constructor='CrossArchOptimWrapperConstructor',
            student=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
            discriminator=dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.999))))

    A top-level ``paramwise_cfg``, and any other top-level key (e.g. ``type='AmpOptimWrapper'``
    and ``loss_scale`` as ``tools/train.py --amp`` sets them), are defaults of both wrappers.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        cfg = dict(optim_wrapper_cfg)
        missing = {'student', 'discriminator'} - set(cfg)
        if missing or 'optimizer' in cfg:
            raise ValueError('CrossArchOptimWrapperConstructor: optim_wrapper needs the keys '
                             "'student' and 'discriminator' (each with its optimizer), got "
                             f'{sorted(cfg)}')
        shared = {k: v for k, v in cfg.items() if k not in ('student', 'discriminator')}
        self.optim_wrapper_cfg = {name: {**shared, **cfg[name]}
                                  for name in ('student', 'discriminator')}
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'discriminators'):
            raise TypeError('CrossArchOptimWrapperConstructor needs a CrossArchDistiller, got '
                            f'{type(model).__name__}')
        d_ids = {id(d) for d in model.discriminators()}
        if not d_ids:
            raise ValueError('CrossArchOptimWrapperConstructor: the distiller has no '
                             'discriminator (no CAKDLoss in distill_losses)')
        views = dict(student=_mirror(model, keep={id(model)}, drop=d_ids, own_params=True),
                     discriminator=_mirror(model, keep=d_ids, drop=set(), own_params=False))
        wrappers = {}
        for name, view in views.items():
            cfg = dict(self.optim_wrapper_cfg[name])
            paramwise = cfg.pop('paramwise_cfg', None) or self.paramwise_cfg
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(view)
        return OptimWrapperDict(**wrappers)
