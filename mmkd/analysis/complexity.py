"""Parameters and FLOPs of a distillation config's parts: the student, the teacher and the
distillation modules (``distill_losses``), and how much of a training step the teacher costs.

FLOPs are counted as OpenMMLab's ``get_flops.py`` tools count them, with MMEngine's
:class:`~mmengine.analysis.FlopAnalyzer` (fvcore's convention: one multiply-add is one FLOP),
for one image. The computation behind ``tools/analysis/get_flops.py``.
"""
import contextlib
import copy
import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict

from .loading import is_distillation, load_config

#: backward ~ 2x forward (a gradient w.r.t. the inputs and one w.r.t. the weights), so a
#: trained part costs ~3x its forward per step; the frozen teacher runs its forward only
TRAIN_STEP_FACTOR = 3


@dataclass
class Part:
    """One part of the distillation: its parameters, trainable parameters and FLOPs (one image;
    ``None`` where they could not be counted, see ``note``)."""
    name: str
    params: int
    trainable_params: int
    flops: Optional[int]
    note: str = ''


# -- FLOPs ------------------------------------------------------------------------------------
def _sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::scaled_dot_product_attention``: q @ k^T and attn @ v. MMEngine 0.10.7 has no
    handle for it, and mmpretrain's attention calls it on torch 2: without this, every ViT's
    attention products would be silently left out of the count."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])
    if q is None or k is None or v is None:
        return 0
    batch = 1
    for d in q[:-2]:
        batch *= d
    n_q, d_qk = q[-2], q[-1]
    n_k, d_v = k[-2], v[-1]
    return batch * n_q * n_k * (d_qk + d_v)


def count_flops(model: nn.Module, inputs: Tuple) -> int:
    """FLOPs of ``model(*inputs)``, by MMEngine's jit-tracing :class:`FlopAnalyzer`."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flop_jit)
    # ops without FLOPs (activations, reshapes) and unused modules are expected: not warned
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        return int(analyzer.total())


def count_flops_dispatch(model: nn.Module, inputs: Tuple) -> int:
    """FLOPs of ``model(*inputs)`` by torch's :class:`FlopCounterMode`, for code jit cannot
    trace (e.g. ``torch.func`` calls). It counts 2 FLOPs per multiply-add, halved here to
    :func:`count_flops`' convention, and only matrix products and convolutions."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return int(counter.get_total_flops()) // 2


class _Call(nn.Module):
    """``module(**kwargs)`` with the tensors of ``kwargs`` as positional inputs (what jit
    tracing takes) and everything else held fixed."""

    def __init__(self, module: nn.Module, kwargs: Dict[str, Any]):
        super().__init__()
        from torch.utils._pytree import tree_flatten
        self.module = module
        leaves, self.spec = tree_flatten(kwargs)
        self.leaves = leaves
        self.tensor_idx = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor)]

    def tensors(self) -> Tuple[torch.Tensor, ...]:
        return tuple(self.leaves[i] for i in self.tensor_idx)

    def forward(self, *tensors):
        from torch.utils._pytree import tree_unflatten
        leaves = list(self.leaves)
        for i, t in zip(self.tensor_idx, tensors):
            leaves[i] = t
        out = self.module(**tree_unflatten(leaves, self.spec))
        return out if isinstance(out, torch.Tensor) else torch.stack(
            [v.sum() for v in _tensors_of(out)])


def _tensors_of(out) -> List[torch.Tensor]:
    from torch.utils._pytree import tree_flatten
    return [x for x in tree_flatten(out)[0] if isinstance(x, torch.Tensor)]


def loss_inputs(distiller: nn.Module, shape: Tuple[int, int, int], batch: int = 2
                ) -> Dict[str, Dict[str, Any]]:
    """The keyword arguments each distillation loss gets in a real training step on a random
    batch of ``batch`` images of ``shape`` (C, H, W), recorded by forward pre-hooks."""
    from mmpretrain.structures import DataSample
    num_classes = getattr(getattr(distiller.student, 'head', None), 'num_classes', 10)
    g = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
                        for _ in range(batch)],
                data_samples=[DataSample().set_gt_label(i % num_classes) for i in range(batch)])
    if getattr(distiller, 'logit_cache', False):  # what TeacherLogitsDataset adds
        for sample in data['data_samples']:
            sample.set_field(torch.randn(num_classes, generator=g), 'teacher_logits')
    recorded, handles = {}, []
    for name, loss in distiller.distill_losses.items():
        def record(module, args, kwargs, name=name):
            recorded[name] = kwargs
        handles.append(loss.register_forward_pre_hook(record, with_kwargs=True))
    was_training = distiller.training
    state = copy.deepcopy(distiller.state_dict())  # the step updates BN statistics
    try:
        distiller.train()
        with torch.no_grad():
            batch_data = distiller.data_preprocessor(data, training=True)
            distiller(**batch_data, mode='loss')
    finally:
        for h in handles:
            h.remove()
        distiller.load_state_dict(state)
        distiller.train(was_training)
    return recorded


# -- the parts ----------------------------------------------------------------------------------
def _params(module: Optional[nn.Module]) -> Tuple[int, int]:
    if module is None:
        return 0, 0
    ps = list(module.parameters())
    return sum(p.numel() for p in ps), sum(p.numel() for p in ps if p.requires_grad)


def input_shape(cfg: Config, shape: Optional[Sequence[int]] = None) -> Tuple[int, int, int]:
    """(C, H, W) of one input image: ``shape`` (H, W) or what the config says (the test
    pipeline's crop/resize, else the student backbone's ``img_size``, else 28 for MNIST-type
    datasets, else 224); channels from the student backbone's ``in_channels``, else the data
    preprocessor's mean, else 3."""
    model = cfg.model
    student = model.get('student', model) if isinstance(model, (dict, ConfigDict)) else {}
    if isinstance(student, str):
        from mmkd.models.builder import model_config
        student = model_config(student, 'student')
    backbone = student.get('backbone') or {}
    pre = (model.get('data_preprocessor') if isinstance(model, (dict, ConfigDict)) else None) \
        or cfg.get('data_preprocessor') or {}
    channels = backbone.get('in_channels') or (len(pre['mean']) if pre.get('mean') else 3)
    if shape is not None:
        if len(shape) == 1:
            shape = (shape[0], shape[0])
        if len(shape) != 2:
            raise ValueError(f'--shape takes H W (or one size), got {list(shape)}')
        return int(channels), int(shape[0]), int(shape[1])
    size = None
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = loader.get('dataset') or {}
    for step in dataset.get('pipeline') or []:  # the last resize/crop sets the size
        if step.get('type') in ('CenterCrop', 'Resize', 'ResizeEdge'):
            size = step.get('crop_size', step.get('scale', size))
    if size is None and backbone.get('img_size') is not None:
        size = backbone['img_size']
    if size is None:
        size = 28 if 'MNIST' in str(dataset.get('type', '')) else 224
    if isinstance(size, (int, float)):
        h = w = size
    else:
        w, h = size  # mmcv sizes are (w, h)
    return int(channels), int(h), int(w)


def build_for_analysis(cfg: Config) -> nn.Module:
    """The config's model with ``teacher_ckpt=None`` (weights do not change FLOPs) and the
    config's top-level data preprocessor, as the runner would merge it."""
    from mmengine.registry import DefaultScope

    from mmkd.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if is_distillation(cfg):
        model_cfg['teacher_ckpt'] = None
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    with warnings.catch_warnings(), DefaultScope.overwrite_default_scope('mmkd'):
        # the random-teacher warning: expected, the teacher's weights do not matter here
        warnings.simplefilter('ignore')
        logger.setLevel(logging.ERROR)
        try:
            model = MODELS.build(model_cfg)
        finally:
            logger.setLevel(level)
    return model.eval()


def complexity(config: Union[str, Config], shape: Optional[Sequence[int]] = None,
               cfg_options: Optional[dict] = None) -> dict:
    """Parameters and FLOPs (one image) of the student, the teacher and the distillation
    modules of ``config``, and the teacher's share of a training step's FLOPs.

    Returns:
        dict with ``input_shape`` (C, H, W), ``parts`` (``{name: Part as dict}``: student,
        teacher, distill_losses and each loss), ``step_flops`` (teacher forward +
        3 x (student + distillation modules' forward)) and ``teacher_share`` (teacher forward
        / step; ``None`` for a plain classifier config).
    """
    cfg = load_config(config, cfg_options)
    shape3 = input_shape(cfg, shape)
    model = build_for_analysis(cfg)
    x = torch.zeros(1, *shape3)
    parts: Dict[str, Part] = {}
    if not is_distillation(cfg):
        parts['model'] = Part('model', *_params(model), None)
        with _frozen(model):
            parts['model'].flops = count_flops(model, (x, ))
        return dict(input_shape=shape3, parts={k: asdict(v) for k, v in parts.items()},
                    step_flops=TRAIN_STEP_FACTOR * parts['model'].flops, teacher_share=None)
    # parameters first: the tracing below needs them all frozen
    teacher, losses = model.teacher, model.distill_losses
    params = dict(student=_params(model.student), teacher=_params(teacher),
                  distill_losses=_params(losses),
                  **{name: _params(loss) for name, loss in losses.items()})
    with _frozen(model):
        return _complexity(model, x, shape3, params)


@contextlib.contextmanager
def _frozen(model: nn.Module):
    """No parameter requires grad while tracing: jit refuses to trace a module that reaches
    a trainable parameter it does not own (e.g. CSKD's loss applying the student's
    distillation head, bound, not registered, to every patch token)."""
    teacher = getattr(model, 'teacher', None)
    modules = [model] + ([teacher] if isinstance(teacher, nn.Module) else [])
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _complexity(model: nn.Module, x: torch.Tensor, shape3: Tuple[int, int, int],
                params: Dict[str, Tuple[int, int]]) -> dict:
    teacher, losses = model.teacher, model.distill_losses
    parts: Dict[str, Part] = {}
    parts['student'] = Part('student', *params['student'], count_flops(model.student, (x, )))
    parts['teacher'] = Part('teacher', *params['teacher'],
                            count_flops(teacher, (x, )) if teacher is not None else 0,
                            '' if teacher is not None else 'logit cache: no teacher forward')
    recorded, note = {}, ''
    if len(losses):
        try:
            recorded = loss_inputs(model, shape3)
        except Exception as e:  # a distiller whose step needs more than images and labels
            note = f'not counted: a training step failed ({type(e).__name__}: {e})'
    total = 0
    for name, loss in losses.items():
        flops, why = None, note
        if name in recorded:
            call = _Call(loss, recorded[name])
            # the inputs are a batch of 2: loss FLOPs scale with it, per image is half
            try:
                flops = count_flops(call, call.tensors()) // 2
            except Exception as e:
                try:
                    flops = count_flops_dispatch(call, call.tensors()) // 2
                    why = ("matmuls/convolutions only, by torch's FlopCounterMode (jit "
                           f'tracing failed: {type(e).__name__})')
                except Exception as e2:
                    why = f'not counted: {type(e).__name__}: {e}; {type(e2).__name__}: {e2}'
        elif not why:
            why = 'not called in a training step'
        parts[name] = Part(name, *params[name], flops, why)
        total = None if total is None or flops is None else total + flops
    parts['distill_losses'] = Part('distill_losses', *params['distill_losses'], total,
                                   '' if total is not None else 'some losses not counted')
    trained = parts['student'].flops + (total or 0)
    step = parts['teacher'].flops + TRAIN_STEP_FACTOR * trained
    return dict(input_shape=shape3, parts={k: asdict(v) for k, v in parts.items()},
                step_flops=step, teacher_share=parts['teacher'].flops / step if step else None)


def human(n: Optional[float], unit: str = '') -> str:
    """1234567 -> '1.235M' (as OpenMMLab's tools print sizes)."""
    if n is None:
        return 'n/a'
    for div, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= div:
            return f'{n / div:.3f}{suffix}{unit}'
    return f'{n:.0f}{unit}'


def format_report(result: dict, config: str = '') -> str:
    """The result of :func:`complexity` as a table."""
    c, h, w = result['input_shape']
    lines = [f'{config}: input {c}x{h}x{w} (one image); FLOPs: 1 multiply-add = 1 FLOP', '',
             f'| {"part":<22} | {"params":>10} | {"trainable":>10} | {"FLOPs":>10} | note',
             f'|{"-" * 24}|{"-" * 12}|{"-" * 12}|{"-" * 12}|-----']
    for p in result['parts'].values():
        lines.append(f'| {p["name"]:<22} | {human(p["params"]):>10} | '
                     f'{human(p["trainable_params"]):>10} | {human(p["flops"]):>10} | '
                     f'{p["note"]}')
    lines.append('')
    if result['teacher_share'] is None:
        lines.append(f'training step ~ {TRAIN_STEP_FACTOR} x forward = '
                     f'{human(result["step_flops"])} FLOPs per image')
    else:
        parts = result['parts']
        lines.append(
            f'training step ~ teacher forward {human(parts["teacher"]["flops"])} + '
            f'{TRAIN_STEP_FACTOR} x (student + distillation modules) forward '
            f'{human(parts["student"]["flops"] + (parts["distill_losses"]["flops"] or 0))} = '
            f'{human(result["step_flops"])} FLOPs per image; '
            f'teacher share {100 * result["teacher_share"]:.1f} %'
            + ('' if parts['distill_losses']['flops'] is not None else
               ' (an upper bound: some distillation modules are not counted)'))
    return '\n'.join(lines)
