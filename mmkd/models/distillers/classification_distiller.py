from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.datasets.transforms import UNLABELLED
from mmkd.registry import MODELS
from ..normalization import renormalisation
from ..seeded_data_preprocessor import SeededClsDataPreprocessor
from ..teacher_source import CachedTeacherLogits, autocast_context
from .base_distiller import BaseDistiller


@MODELS.register_module()
class ClassificationDistiller(BaseDistiller):
    """Distils an mmpretrain classifier (student) from another (teacher).

    Both models see the same augmented (and mixup/cutmix-mixed) batch from one data
    preprocessor. A teacher trained with another normalisation gets ``teacher_norm=dict(mean,
    std)``: its input is re-normalised by a per-channel affine map, which is exact also after
    mixing (mixing is a convex combination and commutes with an affine map).

    Built-in taps: ``logits`` (the head's output, (B, K)) and, for a student with a
    :class:`DistillTokenClsHead`, ``dist_logits`` (the distillation-token logits, (B, K)).
    Data sources: ``data.gt_label`` (B,), ``data.gt_score`` (B, K). Samples without a label
    (``gt_label == UNLABELLED``, from :class:`~mmkd.datasets.PartialLabels`) add nothing to the
    student's cross-entropy (mmpretrain's: the sum over the labelled samples divided by the
    batch size, so every sample weighs the same in the step: its CE if it has a label, and its
    distillation terms); a loss that reads their label needs ``unlabelled_targets``.

    Args:
        teacher_norm (dict, optional): ``dict(mean=[...], std=[...])`` the teacher was trained
            with, in the pixel range of the data; default: the student's normalisation.
        eval_teacher (bool): also predict with the teacher in val/test; its scores are stored
            as ``teacher_pred_score`` for :class:`~mmkd.evaluation.TeacherMetric`.
        logit_cache (bool): read the teacher's logits from the data (the ``teacher_logits``
            field that :class:`~mmkd.datasets.TeacherLogitsDataset` adds to each sample)
            instead of running the teacher; ``teacher`` may then be ``None``. Only losses on
            ``teacher.logits`` (KD, NKD, DKD, DeiT) can work from it, and the data preprocessor
            must not mix samples (mixup/cutmix change the image the logits belong to).
        unlabelled_targets (str, optional): what ``data.gt_label``/``data.gt_score`` hold for
            unlabelled samples: ``'teacher'``, the teacher's top-1 class (its hard pseudo-label,
            as DeiT's hard distillation uses); ``None``: a batch with unlabelled samples is an
            error for a loss that reads the labels (NKD, DKD).
        **kwargs: see :class:`BaseDistiller`.
    """
    builtin_taps = dict(logits='head')
    data_sources = ('gt_label', 'gt_score')

    def __init__(self, *args, teacher_norm: Optional[dict] = None, eval_teacher: bool = False,
                 logit_cache: bool = False, unlabelled_targets: Optional[str] = None, **kwargs):
        if unlabelled_targets not in (None, 'teacher'):
            raise ValueError(f"unlabelled_targets={unlabelled_targets!r}: use 'teacher' (the "
                             "teacher's top-1 class) or None")
        # as mmpretrain's ImageClassifier: the config's top-level data_preprocessor has no type
        pre = kwargs.get('data_preprocessor') or {}
        if isinstance(pre, dict):
            kwargs['data_preprocessor'] = {'type': 'ClsDataPreprocessor', **pre}
        super().__init__(*args, teacher_source=CachedTeacherLogits if logit_cache else None,
                         **kwargs)
        if eval_teacher and self.teacher is None:
            raise ValueError('eval_teacher=True needs a teacher (teacher=None with logit_cache)')
        self.eval_teacher = eval_teacher
        self.unlabelled_targets = unlabelled_targets
        self._label_readers = [name for name, args in self._loss_args.items()
                               if any(kind == 'data' for kind, _ in args.values())]
        required = self.teacher_source.required
        if unlabelled_targets and self._label_readers and 'logits' not in required:
            required.append('logits')  # checked to record at every step
        if self.logit_cache:
            self._check_no_mixing()
        self._check_num_classes()
        self._setup_teacher_norm(teacher_norm)

    def _builtin_taps(self, model) -> Dict[str, str]:
        taps = dict(self.builtin_taps)
        if hasattr(getattr(model, 'head', None), 'layers') and hasattr(model.head.layers, 'head_dist'):
            taps['dist_logits'] = 'head.layers.head_dist'
        return taps

    @property
    def logit_cache(self) -> bool:
        """Whether the teacher's logits are read from the data rather than computed."""
        return isinstance(self.teacher_source, CachedTeacherLogits)

    def mixing_augments(self) -> List[str]:
        """The data preprocessor's batch augments (mixup/cutmix), by name."""
        augments = getattr(self.data_preprocessor, 'batch_augments', None)
        if augments is None:
            return []
        return [type(a).__name__ for a in getattr(augments, 'augments', [augments])
                if a is not None]

    def _check_no_mixing(self) -> None:
        """Logits cached per sample cannot stand for mixed images; a batch cache replays the
        mixing only with batch augments that draw from the samples' seeds."""
        names = self.mixing_augments()
        if names and not isinstance(self.data_preprocessor, SeededClsDataPreprocessor):
            raise ValueError(
                f'logit_cache=True, but the data preprocessor '
                f'{type(self.data_preprocessor).__name__} mixes samples ({names}) with the '
                'global random state: cached logits cannot be those of its mixed images. '
                "Cache whole batches (docs/teacher_cache.md: data_preprocessor=dict(type="
                "'SeededClsDataPreprocessor'), GlobalBatchSampler, BatchTeacherLogitsDataset), "
                'remove batch_augments, or distil from the online teacher.')

    def _check_num_classes(self) -> None:
        if self.teacher is None:
            return
        s_k = getattr(self.student.head, 'num_classes', None)
        t_k = getattr(self.teacher.head, 'num_classes', None)
        logit_losses = [name for name, args in self._loss_args.items()
                        if ('teacher', 'logits') in args.values()]
        if logit_losses and s_k is not None and t_k is not None and s_k != t_k:
            raise ValueError(f'{logit_losses} compare logits, but the student has {s_k} classes '
                             f'and the teacher {t_k}')

    def _setup_teacher_norm(self, teacher_norm: Optional[dict]) -> None:
        # as given, for messages (TeacherCheckHook names it when the teacher looks mis-fed)
        self.teacher_norm = None if teacher_norm is None else dict(teacher_norm)
        if teacher_norm is None:
            self.register_buffer('teacher_scale', None)
            self.register_buffer('teacher_shift', None)
            return
        scale, shift = renormalisation(self.data_preprocessor, teacher_norm['mean'],
                                       teacher_norm['std'])
        self.register_buffer('teacher_scale', scale, persistent=False)
        self.register_buffer('teacher_shift', shift, persistent=False)

    def teacher_inputs(self, inputs: Tensor) -> Tensor:
        if self.teacher_scale is None:
            return inputs
        return inputs * self.teacher_scale + self.teacher_shift

    def teacher_forward(self, inputs: Tensor, data_samples) -> Tensor:
        return self.teacher(self.teacher_inputs(inputs), mode='tensor')

    def teacher_logits(self, inputs: Tensor, data_samples=None) -> Tensor:
        """The teacher's (B, K) float logits for a preprocessed batch, computed as in the
        training step: ``channels_last``, ``teacher_norm`` re-normalisation, ``no_grad`` and
        ``teacher_autocast``. Used by :class:`~mmkd.engine.TeacherCheckHook`."""
        if self.teacher is None:
            raise RuntimeError('teacher_logits: this distiller has no teacher (logit_cache)')
        inputs = self.format_inputs(inputs)
        with torch.no_grad(), autocast_context(self.teacher_autocast, inputs):
            logits = self.teacher_forward(inputs, data_samples)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            raise TypeError('teacher_logits: the teacher\'s tensor-mode output is '
                            f'{type(logits).__name__}'
                            + (f' of shape {tuple(logits.shape)}' if isinstance(logits, Tensor)
                               else '') + ', not (B, num_classes) logits')
        return logits.float()

    def student_loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        losses = self.student.loss(inputs, data_samples)
        # mmpretrain calls the task loss 'loss', the name MMEngine gives the total
        if 'loss' in losses:
            losses['loss_cls'] = losses.pop('loss')
        return losses

    def data_inputs(self, data_samples, t_records) -> Dict[str, Tensor]:
        if not self._label_readers:
            return {}
        gt_label = torch.cat([s.gt_label for s in data_samples])
        unlabelled = gt_label == UNLABELLED
        if unlabelled.any():
            if self.unlabelled_targets is None:
                raise ValueError(
                    f'{int(unlabelled.sum())} of the {len(gt_label)} samples of this batch have '
                    f'no label (PartialLabels), and {", ".join(self._label_readers)} read the '
                    "labels: set the distiller's unlabelled_targets='teacher' (the teacher's "
                    'top-1 class stands for their label) or label every sample')
            gt_label = torch.where(unlabelled, t_records['logits'].argmax(1), gt_label)
        if 'gt_score' in data_samples[0]:
            gt_score = torch.stack([s.gt_score for s in data_samples])
        else:
            gt_score = F.one_hot(gt_label, self.student.head.num_classes).float()
        return dict(gt_label=gt_label, gt_score=gt_score)

    def predict(self, inputs: Tensor, data_samples: Optional[List] = None) -> List:
        t_logits = None
        if self.eval_teacher:
            with torch.no_grad():
                t_logits = self.teacher_forward(inputs, data_samples)
        samples = self.student.predict(inputs, data_samples)
        if t_logits is not None:
            t_score = F.softmax(t_logits, dim=1)
            for sample, score in zip(samples, t_score):
                sample.set_field(score, 'teacher_pred_score')
                sample.set_field(score.argmax(dim=0, keepdim=True), 'teacher_pred_label')
        return samples
