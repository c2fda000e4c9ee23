"""Checkpoint files that are complete or refused: atomic writes, damage diagnosis, resume choice.

A run killed while it writes a checkpoint must never leave a file that a later run takes for a
good one, and a damaged file must be reported as such (file, size, what failed) instead of as
an unpickling traceback. Three pieces:

- :class:`AtomicLocalBackend`: MMEngine's local file backend, but every ``put`` writes a
  temporary file in the same directory, fsyncs it and renames it over the target
  (``os.replace``, atomic on POSIX and Windows): a reader sees the old file or the new one,
  never a prefix of it. :class:`~mmkd.engine.AtomicCheckpointHook` saves through it.
- :func:`checkpoint_damage` / :func:`load_checkpoint_file`: what is wrong with a file, checked
  on the zip archive that ``torch.save`` writes (central directory, CRC-32 of every record).
- :func:`find_resume_checkpoint`: the last complete checkpoint of a work dir, starting from
  MMEngine's ``last_checkpoint`` file and falling back, with a warning naming each damaged
  file, to the previous complete one.
"""
import functools
import os
import os.path as osp
import pickle
import re
import zipfile
import zlib
from contextlib import contextmanager
from typing import Callable, List, Optional, Tuple

import torch
from mmengine.fileio import LocalBackend, register_backend

#: name under which :class:`AtomicLocalBackend` is registered (``backend_args=dict(backend=...)``)
ATOMIC_BACKEND = 'mmkd_atomic_local'
#: MMEngine's default checkpoint names: ``epoch_3.pth``, ``iter_2000.pth``
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
#: temporary files of :func:`atomic_write`: ``.<name>.<pid>.tmp`` beside the target
TEMP_NAME = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$')
_ZIP_MAGIC = b'PK\x03\x04'


class DamagedCheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read: truncated, corrupted or empty."""

    def __init__(self, path: str, reason: str, role: str = ''):
        self.path, self.reason = path, reason
        try:
            self.size: Optional[int] = osp.getsize(path)
        except OSError:
            self.size = None
        size = f'{self.size:,} bytes' if self.size is not None else 'size unknown'
        what = f'{role} checkpoint' if role else 'checkpoint'
        super().__init__(f"{what} '{path}' is damaged ({size}): {reason}. Re-create it, or copy "
                         'or download it again')


# -- writing --------------------------------------------------------------------------------
def temp_path(path: str) -> str:
    """Where :func:`atomic_write` stages ``path``: a hidden file of the same directory (so the
    rename stays on one file system), named after the writing process."""
    head, name = osp.split(path)
    return osp.join(head, f'.{name}.{os.getpid()}.tmp')


def _fsync_dir(directory: str) -> None:
    # the rename itself is durable only once the directory entry is on disk; not every OS or
    # file system lets a directory be opened for that, and the write is complete without it
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(data: bytes, path: str,
                 write: Optional[Callable[[object, bytes], None]] = None) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either untouched or complete.

    ``write(file, data)`` does the writing into the open temporary file (default
    ``file.write(data)``); tests replace it by a slow one to kill a process mid-write.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = temp_path(path)
    # O_EXCL: never write through a file (or a link) that is there already; mode 0o666 lets the
    # umask decide the permissions, as for a plain open()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL
                 | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            (write or _plain_write)(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _plain_write(f, data: bytes) -> None:
    f.write(data)


class AtomicLocalBackend(LocalBackend):
    """MMEngine's ``LocalBackend`` with atomic ``put``/``put_text`` (:func:`atomic_write`).

    MMEngine's ``save_checkpoint`` serialises the checkpoint into memory and hands the bytes to
    the file backend's ``put``: the one place a checkpoint's bytes reach the disk, hence the
    one place to make that write atomic without patching MMEngine.
    """

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath), functools.partial(self._write, path=str(filepath)))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)

    def _write(self, f, data: bytes, path: str) -> None:
        """Write ``data`` (destined for ``path``) into the open temporary file ``f``."""
        f.write(data)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def is_local(path) -> bool:
    return isinstance(path, str) and '://' not in path


def remove_stale_temp_files(directory: str, logger=None) -> List[str]:
    """Remove the temporary files that interrupted :func:`atomic_write` calls of *other*
    processes left in ``directory`` (a killed run's partial checkpoint); returns their paths."""
    removed = []
    if not osp.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        m = TEMP_NAME.match(name)
        if m is None or int(m.group('pid')) == os.getpid():
            continue
        path = osp.join(directory, name)
        try:
            size = osp.getsize(path)
            os.remove(path)
        except OSError:
            continue
        removed.append(path)
        if logger is not None:
            logger.warning(f"removed '{path}' ({size:,} bytes): the partial "
                           f"'{m.group('name')}' of a save that was interrupted (the target "
                           'file was never replaced by it)')
    return removed


# -- reading --------------------------------------------------------------------------------
def checkpoint_damage(path: str) -> Optional[str]:
    """What is wrong with checkpoint file ``path``, or ``None`` when nothing is found.

    ``torch.save`` writes a zip archive whose records each carry a CRC-32: a truncated file
    lacks the archive's central directory (written last), a corrupted one fails a CRC. Both are
    checked here by reading the whole file once, without unpickling anything. (``torch.load``
    itself notices a truncation but not a corruption: it does not check the CRCs, and loads
    the flipped bits.) A file in torch's legacy (pre-1.6, plain pickle) format has no such
    structure: only loading it can tell, so ``None`` is returned for it unless it is empty.
    """
    try:
        size = osp.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as e:
        return f'it cannot be read ({type(e).__name__}: {e})'
    if size == 0:
        return 'the file is empty'
    if head != _ZIP_MAGIC:
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            # a file saved with torch.serialization.set_crc32_options(False) has 0 for every
            # CRC: its contents cannot be checked, only its structure (complete, above)
            bad = zf.testzip() if any(i.CRC for i in zf.infolist()) else None
    except zipfile.BadZipFile as e:
        return (f'the zip archive torch.save writes is incomplete ({e}): the file was cut short, '
                'e.g. by an interrupted write, copy or download')
    except (OSError, EOFError, zlib.error, ValueError, RuntimeError) as e:
        return f'reading its records failed ({type(e).__name__}: {e})'
    if bad is not None:
        return f"its record '{bad}' fails the CRC-32 check: the contents are corrupted"
    return None


def _is_safe_loader_refusal(e: BaseException) -> bool:
    # torch's weights_only loader refusing a type is a policy decision about an intact file
    return isinstance(e, pickle.UnpicklingError) and 'Weights only load failed' in str(e)


def _looks_like_damage(e: BaseException) -> bool:
    """Errors torch.load raises on a truncated/corrupted file (as opposed to e.g. a missing
    device for ``map_location``)."""
    if isinstance(e, (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, zlib.error)):
        return not _is_safe_loader_refusal(e)
    return isinstance(e, RuntimeError) and any(
        s in str(e) for s in ('PytorchStreamReader', 'invalid header or archive is corrupted',
                              'failed finding central directory', 'CRC-32'))


@contextmanager
def reporting_damage(path: str, role: str = ''):
    """Turn an error raised inside the block while ``path`` is read into a
    :class:`DamagedCheckpointError` naming the file, its size and what failed, when the file
    is damaged; any other error (and every error about an intact file) passes unchanged. The
    file is diagnosed only after a failure: an intact file costs nothing extra."""
    try:
        yield
    except DamagedCheckpointError:
        raise
    except Exception as e:
        if _is_safe_loader_refusal(e) or not osp.isfile(path):
            raise
        reason = checkpoint_damage(path)
        if reason is None and _looks_like_damage(e):
            detail = ' '.join(str(e).split())[:300]
            reason = f'torch.load failed ({type(e).__name__}: {detail})'
        if reason is None:
            raise
        raise DamagedCheckpointError(path, reason, role) from None


def load_checkpoint_file(path: str, role: str = '', map_location='cpu', verify: bool = True):
    """``torch.load(path)`` (the safe loader, see :mod:`mmkd.compat`) raising
    :class:`DamagedCheckpointError` when the file is damaged (:func:`reporting_damage`).

    ``verify``: check the records' CRCs first (:func:`check_checkpoint`), since torch.load
    would load corrupted tensor data without a word; this reads the file once more (from the
    page cache, for the load that follows), about a second per GB.
    """
    if verify:
        check_checkpoint(path, role)
    with reporting_damage(path, role):
        return torch.load(path, map_location=map_location)


def check_checkpoint(path: str, role: str = '') -> None:
    """Raise :class:`DamagedCheckpointError` when local file ``path`` is damaged (reads it)."""
    reason = checkpoint_damage(path)
    if reason is not None:
        raise DamagedCheckpointError(path, reason, role)


# -- choosing the checkpoint to resume from ---------------------------------------------------
def _checkpoints(directories) -> List[Tuple[str, str, int, float]]:
    """``(path, kind, step, mtime)`` of every ``epoch_N.pth`` / ``iter_N.pth`` file."""
    found = {}
    for d in directories:
        if not osp.isdir(d):
            continue
        for name in os.listdir(d):
            m = CHECKPOINT_NAME.match(name)
            path = osp.abspath(osp.join(d, name))
            if m and osp.isfile(path):
                found[path] = (path, m.group(1), int(m.group(2)), osp.getmtime(path))
    return list(found.values())


def _resume_order(named: str, work_dir: str) -> List[str]:
    """The files to try, best first, given the path ``last_checkpoint`` names ('' if none)."""
    dirs = [work_dir] + ([osp.dirname(named)] if named else [])
    ckpts = _checkpoints(dirs)
    m = CHECKPOINT_NAME.match(osp.basename(named)) if named else None
    if m is None:
        # no usable pointer (empty) or a custom file name: every checkpoint, newest first
        rest = sorted((c for c in ckpts if c[0] != osp.abspath(named or '')),
                      key=lambda c: (c[3], c[2]), reverse=True)
        return ([named] if named else []) + [c[0] for c in rest]
    kind, step = m.group(1), int(m.group(2))
    named_mtime = osp.getmtime(named) if osp.isfile(named) else float('-inf')
    same = [c for c in ckpts if c[1] == kind and c[0] != osp.abspath(named)]
    # a later step written after the pointed-to file: the run was stopped between renaming a
    # new checkpoint into place and updating last_checkpoint. A later step that is *older* is
    # a leftover of an earlier, longer run in the same work dir and is never taken.
    newer = sorted((c for c in same if c[2] > step and c[3] >= named_mtime),
                   key=lambda c: c[2], reverse=True)
    older = sorted((c for c in same if c[2] < step), key=lambda c: c[2], reverse=True)
    return [c[0] for c in newer] + [named] + [c[0] for c in older]


def find_resume_checkpoint(work_dir: str, logger=None) -> Optional[str]:
    """The checkpoint an automatic resume (``--resume`` without a path) should load.

    MMEngine resumes from the file its ``last_checkpoint`` names. Here that file is checked
    first (:func:`checkpoint_damage`); when it is missing or damaged, or ``last_checkpoint``
    is empty, the previous complete checkpoint of the same kind (``iter_N`` / ``epoch_N``,
    lower ``N``) is taken instead, and a warning names every damaged file passed over. A
    complete checkpoint of a later step written after the named one (a run stopped between
    the two writes) is preferred to it. Returns ``None`` when there is no ``last_checkpoint``
    (a fresh start, as in MMEngine) or when it names a remote file (not checked); raises
    :class:`DamagedCheckpointError` when no complete checkpoint is left.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    try:
        with open(pointer) as f:
            named = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        named = ''
        _warn(logger, f"cannot read '{pointer}' ({type(e).__name__}: {e})")
    if named and not is_local(named):
        return named
    if not named:
        _warn(logger, f"'{pointer}' names no checkpoint (empty: the run was stopped while "
                      'writing it); looking for the latest complete checkpoint instead')
    passed: List[str] = []
    for path in _resume_order(named, work_dir):
        reason = ('the file does not exist' if not osp.isfile(path)
                  else checkpoint_damage(path))
        if reason is None:
            if passed or (named and osp.abspath(path) != osp.abspath(named)):
                _warn(logger, f"resuming from '{path}' instead of '{named or '?'}', the file "
                              f"'{pointer}' names" + (': passed over ' + '; '.join(passed)
                                                       if passed else ' (a later complete '
                                                       'checkpoint written after it)'))
            return path
        size = f'{osp.getsize(path):,} bytes, ' if osp.isfile(path) else ''
        passed.append(f"'{path}' ({size}{reason})")
    if named:
        raise DamagedCheckpointError(
            named, f"it is the checkpoint '{pointer}' names, and no other complete checkpoint "
                   'is left to resume from (' + ('; '.join(passed) or 'none found')
                   + "). Delete the damaged files and 'last_checkpoint' to start afresh",
            'resume')
    return None


def _warn(logger, msg: str) -> None:
    if logger is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    logger.warning(msg)
