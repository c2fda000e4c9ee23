"""Training runs of a results table: each one a real ``tools/train.py`` process, several at once.

On a small CPU machine one training process does not keep every core busy (small matmuls and
the data pipeline leave gaps), so :func:`run_jobs` runs ``slots`` processes side by side, each
with ``threads`` torch threads. A run whose work dir already holds its finished result for the
same command and the same config content is reused, so an interrupted table continues where it
stopped, a moved checkout keeps its runs, and an edited config is trained again.
"""
import hashlib
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from glob import glob
from typing import Callable, Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PROGRESS = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\s*\[\s*(\d+)/(\d+)\]')
DONE_FILE = 'benchmark_run.json'


@dataclass
class Job:
    """One training run.

    Args:
        name: its work dir's name under the table's work dir (``vit_kd_seed0``).
        config: the config file, relative to the repository root.
        options: ``--cfg-options`` of the run (``key=value`` strings).
        epochs: training epochs (for progress).
        val_every: epochs between its evaluations (a finished run has epochs / val_every).
        images: training images it processes in all (weights the time-left estimate).
        label: what the progress lines call it.
        needs: names of jobs whose checkpoints it reads (a student's teacher); it starts after
            them.
        resolve: called with the finished jobs' work dirs just before it starts; returns more
            options (the teacher's checkpoint path).
    """
    name: str
    config: str
    options: List[str]
    epochs: int
    images: int
    label: str = ''
    needs: Sequence[str] = ()
    resolve: Optional[Callable[[Dict[str, str]], List[str]]] = None
    val_every: int = 1
    work_dir: str = field(default='', init=False)


def last_checkpoint(work_dir: str) -> Optional[str]:
    """``epoch_<N>.pth`` with the largest N in ``work_dir``, or None."""
    ckpts = sorted(glob(osp.join(work_dir, 'epoch_*.pth')),
                   key=lambda p: int(re.findall(r'epoch_(\d+)\.pth$', p)[0]))
    return ckpts[-1] if ckpts else None


def val_curve(work_dir: str, key: str = 'accuracy/top1') -> List[float]:
    """``key`` at every validation of ``work_dir``'s runs (one value per epoch; a later run's
    value replaces an earlier one of the same epoch); [] when nothing was logged yet."""
    from mmkd.analysis.curves import Run
    try:
        run = Run(work_dir)
    except FileNotFoundError:
        return []
    return [float(v) for v in run.series(key)[1]]


def command(job: Job, extra: Sequence[str] = ()) -> List[str]:
    return [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, job.config),
            '--work-dir', job.work_dir, '--cfg-options', *job.options, *extra]


def run_record(job: Job, cmd: Sequence[str]) -> dict:
    """What makes two runs the same: the command without the interpreter, paths under the
    repository written relative to it, and a hash of the merged config (its ``_base_`` files
    included), so that an edited config or base is not mistaken for a finished run."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, job.config))
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return dict(command=[a.replace(ROOT + os.sep, '') for a in cmd[1:]],
                config_sha256=hashlib.sha256(text.encode()).hexdigest())


def same_run(job: Job, cmd: Sequence[str]) -> bool:
    """``job.work_dir`` holds the record ``_train`` leaves when a run of this command and
    config completes."""
    path = osp.join(job.work_dir, DONE_FILE)
    if not osp.isfile(path):
        return False
    with open(path) as f:
        done = json.load(f)
    return {k: done.get(k) for k in ('command', 'config_sha256')} == run_record(job, cmd)


def finished(job: Job, cmd: Sequence[str]) -> bool:
    """The work dir holds a completed run of this command and config, every epoch logged."""
    return (same_run(job, cmd)
            and len(val_curve(job.work_dir)) >= job.epochs // job.val_every)


class Progress:
    """Progress lines: which run, its epoch and iteration, and the time left overall.

    Time left = wall time so far / training images done x training images still to go (runs
    differ in length: a teacher sees more images than a student)."""

    def __init__(self, jobs: Sequence[Job], slots: int):
        self.total = sum(j.images for j in jobs)
        self.count = len(jobs)
        self.slots = slots
        self.done_images = 0.0
        self.current: Dict[str, float] = {}
        self.finished = 0
        self.start = time.time()
        self.lock = threading.Lock()

    def eta(self) -> str:
        done = self.done_images + sum(self.current.values())
        if done <= 0:
            return '?'
        left = (self.total - done) * (time.time() - self.start) / done
        return time.strftime('%H:%M:%S', time.gmtime(left))

    def say(self, job: Job, text: str) -> None:
        print(f'[{self.finished}/{self.count} done] {job.label or job.name}: {text}', flush=True)

    def update(self, job: Job, epoch: int, it: int, n_iter: int) -> None:
        with self.lock:
            self.current[job.name] = ((epoch - 1) + it / n_iter) / job.epochs * job.images
            self.say(job, f'epoch {epoch}/{job.epochs} iter {it}/{n_iter}  '
                     f'time left ~{self.eta()}')

    def end(self, job: Job, text: str) -> None:
        with self.lock:
            self.current.pop(job.name, None)
            self.done_images += job.images
            self.finished += 1
            self.say(job, text)


def _train(job: Job, cmd: List[str], env: dict, progress: Progress) -> None:
    os.makedirs(job.work_dir, exist_ok=True)
    t0 = time.time()
    with open(osp.join(job.work_dir, 'train_stdout.log'), 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        for line in proc.stdout:
            log.write(line)
            m = PROGRESS.search(line)
            if m:
                progress.update(job, int(m[1]), int(m[2]), int(m[3]))
        if proc.wait() != 0:
            raise RuntimeError(f'{job.name} failed ({job.config}); see {log.name}')
    with open(osp.join(job.work_dir, DONE_FILE), 'w') as f:
        json.dump(dict(run_record(job, cmd), seconds=round(time.time() - t0, 1)), f)


def run_jobs(jobs: Sequence[Job], work_root: str, slots: int = 1,
             threads: Optional[int] = None, reuse: bool = True,
             on_end: Optional[Callable[[Job], str]] = None) -> Dict[str, str]:
    """Run ``jobs`` (each after the jobs it ``needs``), ``slots`` at a time, each with
    ``threads`` torch threads (default: the cores shared out between the slots).

    ``on_end(job)`` gives the text of its last progress line (e.g. its accuracy). A finished
    run of the same command is reused when ``reuse``. The first failure stops the table
    (running jobs finish) and is raised, naming the run and its log. Returns name -> work dir.
    """
    threads = threads or max(1, (os.cpu_count() or 1) // slots)
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': str(threads),
           'MKL_NUM_THREADS': str(threads)}
    for job in jobs:
        job.work_dir = job.work_dir or osp.join(work_root, job.name)
    progress = Progress(jobs, slots)
    dirs: Dict[str, str] = {}
    pending = list(jobs)
    running: Dict[str, threading.Thread] = {}
    errors: List[BaseException] = []
    done = set()
    cond = threading.Condition()

    def work(job: Job, cmd: List[str]) -> None:
        try:
            _train(job, cmd, env, progress)
            progress.end(job, on_end(job) if on_end else 'done')
        except BaseException as e:  # noqa: B902 (re-raised in the main thread)
            errors.append(e)
        with cond:
            running.pop(job.name)
            if not errors:
                done.add(job.name)
            cond.notify_all()

    names = {j.name for j in jobs}
    unknown = {n for j in jobs for n in j.needs if n not in names}
    if unknown:
        raise ValueError(f'jobs need runs that are not in the table: {sorted(unknown)}')
    with cond:
        while pending or running:
            if errors and not running:
                raise errors[0]
            ready = [] if errors else [j for j in pending
                                       if all(n in done for n in j.needs)]
            launched = False
            for job in ready:
                if len(running) >= slots:
                    break
                pending.remove(job)
                dirs[job.name] = job.work_dir
                extra = job.resolve(dirs) if job.resolve else []
                cmd = command(job, extra)
                launched = True
                if reuse and finished(job, cmd):
                    done.add(job.name)
                    progress.end(job, (on_end(job) if on_end else 'done') + ' (reused)')
                    continue
                progress.say(job, 'starting')
                t = threading.Thread(target=work, args=(job, cmd), daemon=True)
                running[job.name] = t
                t.start()
            if launched:
                continue  # a reused run may have unblocked others
            if not running:
                raise RuntimeError('jobs wait for runs that never finish: ' + ', '.join(
                    f'{j.name} needs {list(j.needs)}' for j in pending))
            cond.wait()
    return dirs
