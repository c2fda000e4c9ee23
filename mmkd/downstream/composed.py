"""Datasets of the composed Fashion-MNIST set (docs/composed_fmnist.md) that make it on first use.

``ComposedFMNISTCocoDataset`` (mmdet ``DATASETS``) and ``ComposedFMNISTSegDataset`` (mmseg
``DATASETS``) are mmdet's ``CocoDataset`` and mmseg's ``BaseSegDataset`` with the composed set's
file layout and class names filled in (:func:`mmkd.datasets.compose.coco_dataset_cfg`,
:func:`~mmkd.datasets.compose.seg_dataset_cfg`). Before reading anything they call
:func:`~mmkd.datasets.compose.ensure_composed` on ``data_root``: a config trains on a fresh
checkout without a separate conversion step, and a set already made with the same options is
used as is (a few milliseconds: one ``meta.json`` read).

Several processes may start on a missing set at once (a benchmark runs two trainings side by
side): an exclusive lock on ``<data_root>.lock`` lets the first one make it while the others
wait, then find it complete. Without the lock the second process would replace the set the
first one is reading. A complete set is used without the lock (a read-only copy works).
"""
import fcntl
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, Optional

from mmkd.datasets.compose import (DEFAULT_DATA_ROOT, ComposeConfig, coco_dataset_cfg,
                                   ensure_composed, is_composed, read_meta, seg_dataset_cfg)


@contextmanager
def _exclusive(path: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), released on exit."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare_composed(data_root: str, compose: Optional[dict] = None,
                     source: Optional[str] = None) -> dict:
    """Make the composed set in ``data_root`` unless it already holds one made with these
    options; returns its meta (``mmkd.datasets.compose.read_meta``).

    Args:
        data_root: the composed set's directory (``data/composed_fmnist``).
        compose: fields of :class:`~mmkd.datasets.compose.ComposeConfig` (``train_images``,
            ``val_images``, ``seed``, ...); ``None`` or ``{}``: the default set (2000 + 500
            canvases of 128 px, seed 0).
        source: the MNIST-format IDX files the items come from (default: Fashion-MNIST in
            ``data/fashion_mnist``).
    """
    source, compose = source or DEFAULT_DATA_ROOT, compose or {}
    if is_composed(data_root, source, ComposeConfig(**compose)):
        return read_meta(data_root)  # the usual case: no lock (nor lock file) needed
    with _exclusive(data_root.rstrip(os.sep) + '.lock'):
        return ensure_composed(data_root, source, **compose)


def _dataset_kwargs(builder, data_root: str, split: str, kwargs: dict) -> dict:
    """The composed set's layout arguments for ``split``; explicit ``kwargs`` win."""
    layout = builder(data_root, split)
    layout.pop('type')
    return {**layout, **kwargs}


try:
    from mmdet.datasets import CocoDataset
except ImportError:  # mmdet not installed: the mmseg dataset still works
    CocoDataset = None
else:

    class ComposedFMNISTCocoDataset(CocoDataset):
        """mmdet ``CocoDataset`` of one split of the composed set, made on first use.

        Args:
            data_root (str): the composed set's directory.
            split (str): ``'train'`` or ``'val'``: picks ``annotations/instances_<split>.json``
                and the ``<split>/`` images.
            compose (dict, optional): the set's options (see :func:`prepare_composed`).
            source (str, optional): the MNIST-format data the items come from.
            **kwargs: the arguments of ``CocoDataset`` (``pipeline``, ``test_mode``,
                ``filter_cfg``, ...); ``ann_file``/``data_prefix``/``metainfo`` default to
                the composed layout.
        """

        def __init__(self, data_root: str, split: str = 'train', compose: Optional[dict] = None,
                     source: Optional[str] = None, **kwargs):
            prepare_composed(data_root, compose, source)
            super().__init__(**_dataset_kwargs(coco_dataset_cfg, data_root, split, kwargs))


try:
    from mmseg.datasets import BaseSegDataset
except ImportError:
    BaseSegDataset = None
else:

    class ComposedFMNISTSegDataset(BaseSegDataset):
        """mmseg semantic dataset of one split of the composed set, made on first use: 11
        classes, ``0`` = background (a class, ``reduce_zero_label=False``), ``1..10`` the
        Fashion-MNIST classes.

        Args:
            data_root (str): the composed set's directory.
            split (str): ``'train'`` or ``'val'``: ``img_dir/<split>``, ``ann_dir/<split>``.
            compose (dict, optional): the set's options (see :func:`prepare_composed`).
            source (str, optional): the MNIST-format data the items come from.
            **kwargs: the arguments of ``BaseSegDataset`` (``pipeline``, ``test_mode``, ...).
        """

        def __init__(self, data_root: str, split: str = 'train', compose: Optional[dict] = None,
                     source: Optional[str] = None, **kwargs):
            prepare_composed(data_root, compose, source)
            super().__init__(**_dataset_kwargs(seg_dataset_cfg, data_root, split, kwargs))
