"""What mmkd's distillation step costs next to a hand-written PyTorch loop doing the same math.

For each method it builds the distiller of a paper config once (random teacher weights: the
speed does not depend on them; mixup/cutmix off, so that every mode sees the same batch), then
times, interleaved, repeat after repeat on one fixed batch:

  (a) mmkd        ``distiller.train_step(data, optim_wrapper)``, as the Runner calls it;
  (b) hand        a minimal PyTorch step with the same modules (deep copies of the student and
                  the loss modules, the same frozen teacher) and the same math: normalise, teacher forward
                  under no_grad with forward hooks for the features, student forward, CE +
                  the method's loss modules called directly on the taps the distiller resolved
                  for them at build time, backward, optimizer step;
  (c) parts       the student-only step (CE only) plus the teacher-only forward, timed apart.

and prints the ratios a/b and a/c (min/median/max over repeats; one run, so machine noise hits
all modes alike), img/s of each mode and the peak memory of (a) and (b), each measured in a
fresh child process that keeps only that mode's objects (peak resident set on CPUs, all of it
and the part the steps add above the built models; ``torch.cuda.max_memory_allocated`` on
GPUs). Before timing, (a) and (b) take one step from identical weights and RNG state: their
losses must agree (``loss a-b`` column), which shows that (b) really does the same math. With an
option (``--amp`` ...), every mode uses it, and mmkd's step without it is timed too: a/(a,
options off) is what the option buys.

``cache`` times the teacher-logit cache: a KD step whose teacher logits come from the data
(``logit_cache=True``, no teacher) against the student-only step. ``--cache-mix`` times the batch
cache with the DeiT recipe's mixup + cutmix on, DeiT-Ti <- RegNetY-16GF: the cached distillation
step, the online one and plain DeiT training of the student, each a real ``train_step``.

    python tools/benchmark/distill_step.py                       # full models, 224 px
    python tools/benchmark/distill_step.py --reduced --repeats 3 # tiny Fashion-MNIST models
    python tools/benchmark/distill_step.py --methods cakd --channels-last --amp
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# method -> (full config, reduced config); 'cache' is derived from the ViTKD/results-table student
CONFIGS = dict(
    vitkd=('configs/vitkd/deit-t_deit3-s_8xb128_in1k.py',
           'configs/results/vit-p7-w64_vit-p7-w128_1xb128_fmnist-10pct_vitkd.py'),
    cskd=('configs/cskd/deit-t_regnety-16gf_8xb128_in1k.py',
          'configs/cskd/deit-small_resnet-small_1xb128_fmnist.py'),
    cakd=('configs/cakd/resnet18_vit-b16_8xb32_in1k.py',
          'configs/cakd/resnet-small_vit-small_1xb128_fmnist.py'),
    cache=('configs/vitkd/deit-t_deit3-s_8xb128_in1k.py',
           'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'),
)
METHODS = tuple(CONFIGS)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--methods', nargs='*', default=list(METHODS), choices=METHODS)
    p.add_argument('--reduced', action='store_true',
                   help='tiny Fashion-MNIST models (28 px) instead of the 224 px paper models')
    p.add_argument('--batch-size', type=int, default=None, help='default: 16 (reduced: 32)')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--amp', action='store_true', help='mixed precision for the whole step')
    p.add_argument('--teacher-bf16', action='store_true', help='teacher under bf16 autocast')
    p.add_argument('--channels-last', action='store_true', help='both models channels_last')
    p.add_argument('--compile-teacher', action='store_true', help='torch.compile the teacher')
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory children')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--cache-data', type=int, default=0, metavar='N',
                   help='also time the data side of the logit cache: replaying N real '
                   'Fashion-MNIST samples from a cache vs loading them plainly')
    p.add_argument('--cache-mix', action='store_true',
                   help='also time the batch cache with mixup + cutmix (DeiT-Ti <- RegNetY-16GF;'
                   ' --reduced: the Fashion-MNIST mixup config): cached vs online distillation '
                   'vs the student trained alone, and the data side per sample')
    p.add_argument('--json', help='also write the results to this file')
    p.add_argument('--child', choices=('a', 'b'), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- building ------------------------------------------------------------------------------
def load_config(method: str, args):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[method][args.reduced]))
    m = cfg.model
    m.teacher_ckpt = None
    if m.get('data_preprocessor') is None:
        m.data_preprocessor = copy.deepcopy(cfg.data_preprocessor)
    m.data_preprocessor.batch_augments = None
    if method == 'cache':
        m.teacher = None
        m.logit_cache = True
        m.student_taps, m.teacher_taps = {}, {}
        m.distill_losses = dict(loss_kd=dict(type='KDLoss', tau=1.0))
    m.teacher_autocast = 'bfloat16' if args.teacher_bf16 else None
    m.channels_last = args.channels_last
    m.compile_teacher = args.compile_teacher
    return cfg


OPTIONS = ('amp', 'teacher_bf16', 'channels_last', 'compile_teacher')


def build(method: str, args, with_hand: bool = True):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmkd.registry import MODELS
    cfg = load_config(method, args)
    with DefaultScope.overwrite_default_scope('mmkd'), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # teacher_ckpt=None warns loudly: random on purpose
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.to(args.device)
        model.train()
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        if args.amp:
            optim_cfg.type = ('AmpOptimWrapper' if args.device.startswith('cuda')
                              else 'AutocastOptimWrapper')
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    hand = HandStep(cfg, model, args) if with_hand else None
    return model, optim_wrapper, hand


def make_batch(model, args):
    """A fixed batch of raw images and labels, as the dataloader gives it."""
    from mmpretrain.structures import DataSample
    student = model.student.backbone
    size = student.img_size if hasattr(student, 'img_size') else (28 if args.reduced else 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    channels = 1 if args.reduced else 3
    k = model.student.head.num_classes
    batch = args.batch_size or (32 if args.reduced else 16)
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (channels, size, size), generator=g, dtype=torch.uint8)
              for _ in range(batch)]
    samples = [DataSample().set_gt_label(int(torch.randint(0, k, (1, ), generator=g)))
               for _ in range(batch)]
    if getattr(model, 'logit_cache', False):  # what TeacherLogitsDataset adds to a sample
        for s in samples:
            s.set_field(torch.randn(k, generator=g), 'teacher_logits')
    return dict(inputs=inputs, data_samples=samples)


def _optimizer(cfg_optim, params):
    cfg = {k: v for k, v in cfg_optim.items() if not k.startswith('_')}  # e.g. _scope_
    return getattr(torch.optim, cfg.pop('type'))(params, **cfg)


def _strip(module):
    """A deep copy keeps mmkd's forward hooks (tap recorders): drop them, the hand-written
    loop registers its own."""
    for m in module.modules():
        m._forward_hooks.clear()
    return module


class HandStep:
    """The hand-written loop: what a user writes without a toolkit, for any distiller.

    Which tensors each loss gets is read from the built distiller once, as it resolved them at
    build time (``loss name -> {forward argument: (kind, key)}``, kind ``student``/``teacher``
    a tap, ``data`` the labels); the loop hooks those taps' modules itself and calls each loss
    with them, so no method needs a branch of its own here."""

    def __init__(self, cfg, model, args):
        self.device = torch.device(args.device)
        self.amp, self.teacher_bf16 = args.amp, args.teacher_bf16
        self.channels_last = args.channels_last
        pre = model.data_preprocessor
        self.mean = pre.mean.to(self.device) if pre._enable_normalize else None
        self.std = pre.std.to(self.device) if pre._enable_normalize else None
        self.to_rgb = pre.to_rgb
        self.t_scale, self.t_shift = model.teacher_scale, model.teacher_shift
        head_loss = model.student.head.loss_module
        self.smooth = float(getattr(head_loss, 'label_smooth_val', 0.0))
        self.w_student = model.student_loss_weight
        self.num_classes = model.student.head.num_classes
        self.loss_args = model.loss_args
        self.reads_labels = any(kind == 'data' for a in self.loss_args.values()
                                for kind, _ in a.values())
        self.logit_cache = getattr(model, 'logit_cache', False)
        student_cfg = cfg.optim_wrapper.get('student', cfg.optim_wrapper)
        optim_cfg = student_cfg.optimizer

        # (b): copies of the student and the losses, copied together so that a loss's
        # reference to a model part (CSKD's heads) points into the copied student. The frozen
        # teacher is shared, not copied: nothing changes it, and one instance also keeps
        # torch.compile from reusing a graph traced on a copy with other hooks for mmkd's
        # (it does not guard on sub-modules' hooks). Its hooks for (b) record into (b)'s dict.
        teacher = model.teacher
        student, losses = copy.deepcopy((model.student, model.distill_losses),
                                        memo={id(teacher): teacher})
        self.student, self.teacher, self.losses = _strip(student), teacher, losses
        self.multi_view = copy.deepcopy(getattr(model, 'multi_view', None))
        self.opt = _optimizer(optim_cfg, list(student.parameters()) + list(losses.parameters()))
        self.clip = (student_cfg.get('clip_grad') or {}).get('max_norm')
        # a loss with a discriminator (Cross-Architecture KD) trains it with its own optimizer
        # every d_interval iterations, on the tokens of the student step
        self.adversarial = list(getattr(model, 'discriminators', {}))
        self.d_opt, self.d_interval, self.it = None, getattr(model, 'd_interval', 1), 0
        if self.adversarial:
            self.d_opt = _optimizer(cfg.optim_wrapper.discriminator.optimizer,
                                    [p for n in self.adversarial
                                     for p in losses[n].discriminator.parameters()])
        # float16 on a GPU needs the loss scaling that mmkd's AmpOptimWrapper does
        self.scaler = (torch.amp.GradScaler('cuda') if args.amp and self.device.type == 'cuda'
                       else None)
        self.s_feats, self.t_feats = {}, {}
        used = {kind: {key for a in self.loss_args.values() for k, key in a.values() if k == kind}
                for kind in ('student', 'teacher')}
        for key in sorted(used['student']):
            self._hook(student, model.student_taps.specs[key], key, self.s_feats)
        if model.teacher_source.runs_teacher:
            for key in sorted(used['teacher']):
                self._hook(teacher, model.teacher_taps.specs[key], key, self.t_feats)
        # (c): the student alone (no hooks, no distillation); its teacher half is the shared
        # teacher's forward
        self.student_c = _strip(copy.deepcopy(student))
        self.opt_c = _optimizer(optim_cfg, self.student_c.parameters())

    @staticmethod
    def _hook(model, spec, name, store):
        """A tap as the distiller declares it: ``spec = dict(path, io)``."""
        module = model.get_submodule(spec['path'])
        if spec['io'] == 'input':
            module.register_forward_hook(lambda m, i, o: store.__setitem__(name, i[0]))
        else:
            module.register_forward_hook(lambda m, i, o: store.__setitem__(name, o))

    def _autocast(self, on):
        if not on:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.device.type == 'cuda' and self.amp else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def images(self, data):
        x = torch.stack(data['inputs']).to(self.device, non_blocking=True).float()
        if self.to_rgb and x.size(1) == 3:
            x = x.flip(1)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.cat([s.gt_label for s in data['data_samples']]).to(self.device)
        return x, y

    def teacher_forward(self, teacher, x):
        if self.t_scale is not None:
            x = x * self.t_scale + self.t_shift
        with torch.no_grad(), self._autocast(self.amp or self.teacher_bf16):
            logits = teacher(x, mode='tensor')
        if self.teacher_bf16:
            logits = logits.float()
            for k, v in self.t_feats.items():
                self.t_feats[k] = (v.float() if torch.is_tensor(v)
                                   else type(v)(t.float() for t in v))
        return logits

    def step(self, data) -> float:
        """(b): one distillation step; returns the total loss."""
        x, y = self.images(data)
        if self.logit_cache:  # the teacher's logits come with the data
            self.t_feats['logits'] = torch.stack(
                [s.teacher_logits for s in data['data_samples']]).to(x.device)
        else:
            self.teacher_forward(self.teacher, x)
        if self.multi_view is not None:
            x = self.multi_view(x)
        with self._autocast(self.amp):
            s_logits = self.student(x, mode='tensor')
            # copies: a loss that calls a tapped module again (CSKD's distillation head on
            # the patch tokens) fires this loop's always-on hooks
            records = dict(student=dict(self.s_feats), teacher=dict(self.t_feats), data={})
            if self.reads_labels:  # every sample labelled, no mixing: the labels as they are
                records['data'] = dict(gt_label=y,
                                       gt_score=F.one_hot(y, self.num_classes).float())
            loss = self.w_student * F.cross_entropy(s_logits, y, label_smoothing=self.smooth)
            for name, args in self.loss_args.items():
                fn = self.losses[name]
                loss = loss + fn.loss_weight * fn(**{arg: records[kind][key]
                                                     for arg, (kind, key) in args.items()})
        self._update(loss, self.opt, self.clip)
        if self.d_opt is not None and self.it % self.d_interval == 0:
            sum(self.losses[n].discriminator_loss() for n in self.adversarial).backward()
            self.d_opt.step()
            self.d_opt.zero_grad()
        self.it += 1
        return float(loss)

    def student_step(self, data):
        """(c), student half: CE only."""
        x, y = self.images(data)
        with self._autocast(self.amp):
            loss = F.cross_entropy(self.student_c(x, mode='tensor'), y,
                                   label_smoothing=self.smooth)
        self._update(loss, self.opt_c, None)

    def _update(self, loss, opt, clip):
        params = [p for g in opt.param_groups for p in g['params']]
        if self.scaler is None:
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
        else:
            self.scaler.scale(loss).backward()
            if clip:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, clip)
            self.scaler.step(opt)
            self.scaler.update()
        opt.zero_grad()

    def teacher_only(self, data):
        """(c), teacher half: one forward under no_grad."""
        if self.teacher is not None:
            self.teacher_forward(self.teacher, self.images(data)[0])


# -- measuring -----------------------------------------------------------------------------
def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, device):
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def check_same_math(model, optim_wrapper, hand, data):
    """One step of (a) and of (b) from identical weights and RNG state: the two totals."""
    torch.manual_seed(1234)
    a = float(model.train_step(copy.deepcopy(data), optim_wrapper)['loss'].detach())
    torch.manual_seed(1234)
    b = hand.step(data)
    return a, b


def run_method(method, args):
    # compiled graphs are cached per process and do not guard on sub-modules' hooks: another
    # method's compiled teacher of a similar architecture must not lend its graph to this one
    torch._dynamo.reset()
    model, optim_wrapper, hand = build(method, args)
    data = make_batch(model, args)
    loss_a, loss_b = check_same_math(model, optim_wrapper, hand, data)
    modes = dict(a=lambda: model.train_step(data, optim_wrapper),
                 b=lambda: hand.step(data),
                 c_student=lambda: hand.student_step(data),
                 c_teacher=lambda: hand.teacher_only(data))
    if any(getattr(args, o) for o in OPTIONS):
        # what the options buy: mmkd's step without them, in the same run
        plain = argparse.Namespace(**{**vars(args), **dict.fromkeys(OPTIONS, False)})
        model0, optim_wrapper0, _ = build(method, plain, with_hand=False)
        modes['a_off'] = lambda: model0.train_step(data, optim_wrapper0)
    for _ in range(args.warmup):
        for fn in modes.values():
            fn()
    times = {k: [] for k in modes}
    for _ in range(args.repeats):
        for k, fn in modes.items():
            times[k].append(timed(fn, args.device))
    a, b = times['a'], times['b']
    c = [s + t for s, t in zip(times['c_student'], times['c_teacher'])]
    batch = len(data['inputs'])
    result = dict(
        method=method, config=CONFIGS[method][args.reduced], batch=batch,
        loss_a=loss_a, loss_b=loss_b,
        a_over_b=_stats([x / y for x, y in zip(a, b)]),
        a_over_c=_stats([x / y for x, y in zip(a, c)]),
        a_over_student=_stats([x / y for x, y in zip(a, times['c_student'])]),
        a_over_off=(_stats([x / y for x, y in zip(a, times['a_off'])]) if 'a_off' in times
                    else None),
        seconds={k: statistics.median(v) for k, v in times.items()},
        img_per_s={k: batch / statistics.median(v) for k, v in times.items()})
    if not args.no_memory:
        result['peak_mem_a'], result['peak_mem_b'] = (_child_memory(method, args, mode)
                                                      for mode in 'ab')
        result['mem_a_over_b'] = result['peak_mem_a']['peak'] / result['peak_mem_b']['peak']
        # the part the steps add (activations, gradients, optimizer state) above the models
        result['step_mem_a_over_b'] = (result['peak_mem_a']['step']
                                       / max(result['peak_mem_b']['step'], 1))
    return result


def _stats(values):
    return dict(min=min(values), median=statistics.median(values), max=max(values))


def _rss(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'no {field} in /proc/self/status')


def _trim():
    """Give freed heap memory back to the OS (glibc keeps it otherwise), so that the resident
    set before the steps is what is alive, the same way in both children."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _child_memory(method, args, mode):
    """Peak memory of ``mode`` alone in a fresh process: nothing of the other mode's (or the
    allocator's cache of it) is in the figure."""
    cmd = [sys.executable, osp.abspath(__file__), '--methods', method, '--child', mode,
           '--repeats', str(max(2, min(args.repeats, 3))), '--device', args.device]
    for flag in ('reduced', ) + OPTIONS:
        if getattr(args, flag):
            cmd.append('--' + flag.replace('_', '-'))
    if args.batch_size:
        cmd += ['--batch-size', str(args.batch_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def child(args):
    """Build as the parent does, then run only ``args.child``'s steps and report its peak."""
    method = args.methods[0]
    model, optim_wrapper, hand = build(method, args)
    data = make_batch(model, args)
    if args.child == 'a':
        del hand  # the hand-written loop's copies are not part of (a)'s footprint
        fn = lambda: model.train_step(data, optim_wrapper)  # noqa: E731
    else:
        del model, optim_wrapper  # nor are the distiller and (c)'s models part of (b)'s
        hand.student_c = hand.opt_c = None
        fn = lambda: hand.step(data)  # noqa: E731
    import gc
    gc.collect()
    _trim()
    cuda = args.device.startswith('cuda')
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM, the peak resident set size, to the current one
        before = _rss('VmRSS')
    for _ in range(args.repeats):
        fn()
    peak = torch.cuda.max_memory_allocated() if cuda else _rss('VmHWM')
    print(json.dumps(dict(mode=args.child, before=before, peak=peak, step=peak - before)))


def measure_cache_data(args):
    """The data side of the logit cache, per sample: ``TeacherLogitsDataset[(epoch, i)]``
    (seeded replay of the pipeline + reading and reconstructing the logits) against the wrapped
    dataset's own ``[i]``, interleaved sample by sample. Fashion-MNIST's training pipeline is
    tiny (flip + pack), so the cache's fixed cost per sample shows at its largest here."""
    import tempfile
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmkd.datasets import TeacherLogitsDataset, cache_teacher_logits
    from mmkd.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/kd/vit-small_resnet-small_1xb128_fmnist.py'))
    cfg.model.teacher_ckpt = None
    cfg.model.data_preprocessor = cfg.data_preprocessor
    dataset = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset.indices = args.cache_data
    with DefaultScope.overwrite_default_scope('mmkd'), warnings.catch_warnings(), \
            tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter('ignore')
        distiller = MODELS.build(cfg.model)
        cache_teacher_logits(distiller, dataset, osp.join(tmp, 'cache'), epochs=1, topk=10,
                             progress=False)
        cached = TeacherLogitsDataset(dataset, osp.join(tmp, 'cache'))
        plain = cached.dataset
        t_cached, t_plain = [], []
        for i in range(len(plain)):
            t_cached.append(timed(lambda: cached[(0, i)], 'cpu'))
            t_plain.append(timed(lambda: plain[i], 'cpu'))
    return dict(samples=len(t_plain), cached_us=1e6 * statistics.median(t_cached),
                plain_us=1e6 * statistics.median(t_plain),
                ratio=statistics.median(t_cached) / statistics.median(t_plain))


MIX_CONFIGS = ('configs/deit/deit-t-distilled_regnety-16gf_8xb64_in1k.py',
               'configs/kd/vit-small_resnet-small_1xb128_fmnist_mixup.py')


def measure_cache_mix(args):
    """Mixup + cutmix on, interleaved, median over repeats of one step of: (cached) the
    distiller reading the teacher's logits from the data (``SeededClsDataPreprocessor`` mixing
    per group of half the batch), (online) the same distiller running the teacher, (student)
    the student alone as mmpretrain trains it (``ImageClassifier.train_step``, its own
    ``ClsDataPreprocessor`` with the same batch augments): plain DeiT training. A fresh copy of
    the batch per step, made outside the timing."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmkd.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, MIX_CONFIGS[args.reduced]))
    pre = copy.deepcopy(cfg.model.get('data_preprocessor') or cfg.data_preprocessor)
    models = {}
    with DefaultScope.overwrite_default_scope('mmkd'), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for mode in ('cached', 'online', 'student'):
            torch.manual_seed(0)
            m = copy.deepcopy(cfg.model)
            m.data_preprocessor = copy.deepcopy(pre)
            m.teacher_ckpt = None
            if mode == 'cached':
                m.update(teacher=None, logit_cache=True)
            if mode == 'student':
                student = m.student
                if isinstance(student, str):
                    student = Config.fromfile(osp.join(ROOT, student)).model
                m = copy.deepcopy(student)
                m.data_preprocessor = dict(copy.deepcopy(pre), type='ClsDataPreprocessor')
            model = MODELS.build(m).to(args.device)
            model.init_weights()
            model.train()
            models[mode] = (model, build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)))
    batch = make_batch(models['cached'][0], args)
    half = len(batch['inputs']) // 2
    for i, sample in enumerate(batch['data_samples']):  # two mixing groups, as the sampler's
        sample.set_metainfo(dict(mix_seed=1000 + i // half))
    times = {mode: [] for mode in models}
    for r in range(args.warmup + args.repeats):
        for mode, (model, ow) in models.items():
            data = copy.deepcopy(batch)
            t = timed(lambda: model.train_step(data, ow), args.device)
            if r >= args.warmup:
                times[mode].append(t)
    med = {mode: statistics.median(v) for mode, v in times.items()}
    return dict(config=MIX_CONFIGS[args.reduced], batch=len(batch['inputs']),
                step_s=med, cached_over_student=med['cached'] / med['student'],
                online_over_student=med['online'] / med['student'],
                cached_over_online=med['cached'] / med['online'])


def measure_cache_mix_data(args, samples=500):
    """The data side of the batch cache, per sample: ``BatchTeacherLogitsDataset[slot]``
    (the sample under its seed + its mixed image's logits from the memory-mapped cache)
    against the plain dataset's ``[i]``, interleaved; Fashion-MNIST's tiny pipeline."""
    import tempfile
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmkd.datasets import BatchTeacherLogitsDataset, GlobalBatchSampler, write_batch_cache
    from mmkd.registry import MODELS
    from types import SimpleNamespace
    cfg = Config.fromfile(osp.join(ROOT, MIX_CONFIGS[1]))
    cfg.model.teacher_ckpt = None
    cfg.model.data_preprocessor = cfg.data_preprocessor
    dataset = copy.deepcopy(cfg.train_dataloader.dataset.dataset)
    dataset.indices = samples
    with DefaultScope.overwrite_default_scope('mmkd'), warnings.catch_warnings(), \
            tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter('ignore')
        distiller = MODELS.build(cfg.model)
        g, m = 100, 50
        write_batch_cache(distiller, dataset, tmp, epochs=1, seed=0, global_batch_size=g,
                          mix_group=m, topk=10, progress=False)
        cached = BatchTeacherLogitsDataset(dataset, tmp)
        sampler = GlobalBatchSampler(SimpleNamespace(seed=0, epoch=0, dataset=cached), g, g, m)
        slots = [slot for b in sampler for slot in b]
        plain = cached.dataset
        t_cached, t_plain = [], []
        for slot in slots:
            t_cached.append(timed(lambda: cached[slot], 'cpu'))
            t_plain.append(timed(lambda: plain[slot.index], 'cpu'))
    return dict(samples=len(slots), cached_us=1e6 * statistics.median(t_cached),
                plain_us=1e6 * statistics.median(t_plain),
                ratio=statistics.median(t_cached) / statistics.median(t_plain))


def report(results, args):
    opts = [o for o in OPTIONS if getattr(args, o)] or ['none']
    lines = [f"device: {args.device} ({torch.get_num_threads()} threads), options: "
             f"{', '.join(opts)}, repeats: {args.repeats}, {'reduced' if args.reduced else 'full'}"
             ' models',
             '| method | batch | a/b min / med / max | a/c min / med / max | a/student med '
             '| loss a-b | img/s a, b, student | peak mem a/b | step mem a/b | a/(a, options off) med |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        def s(key):
            return '{min:.3f} / {median:.3f} / {max:.3f}'.format(**r[key])
        ips = r['img_per_s']
        if 'mem_a_over_b' in r:
            pa, pb = r['peak_mem_a'], r['peak_mem_b']
            mem = (f"{r['mem_a_over_b']:.3f} ({pa['peak'] / 2**20:.0f} / {pb['peak'] / 2**20:.0f}"
                   f" MiB) | {r['step_mem_a_over_b']:.2f} ({pa['step'] / 2**20:.0f} / "
                   f"{pb['step'] / 2**20:.0f} MiB)")
        else:
            mem = '- | -'
        lines.append(f"| {r['method']} | {r['batch']} | {s('a_over_b')} | {s('a_over_c')} | "
                     f"{r['a_over_student']['median']:.3f} | {r['loss_a'] - r['loss_b']:.1e} | "
                     f"{ips['a']:.1f}, {ips['b']:.1f}, {ips['c_student']:.1f} | {mem} | "
                     + (f"{r['a_over_off']['median']:.3f} |" if r['a_over_off'] else '- |'))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)  # configs name files relative to the repository root
    sys.path.insert(0, ROOT)
    import logging
    import mmkd  # noqa: F401
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights' report
    if args.child:
        return child(args)
    from mmengine.utils import ProgressBar
    results = []
    bar = ProgressBar(len(args.methods))
    for method in args.methods:
        results.append(run_method(method, args))
        bar.update()
    print()
    print(report(results, args))
    if args.cache_data:
        data = measure_cache_data(args)
        results.append(dict(method='cache_data', **data))
        print(f"cache, data side ({data['samples']} Fashion-MNIST samples): replay + cached "
              f"logits {data['cached_us']:.0f} us/sample, plain {data['plain_us']:.0f} "
              f"us/sample (median), ratio {data['ratio']:.2f}")
    if args.cache_mix:
        mix = measure_cache_mix(args)
        results.append(dict(method='cache_mix', **mix))
        print(f"batch cache, mixup + cutmix on ({mix['config']}, batch {mix['batch']}, median "
              f"step s: {', '.join(f'{k} {v:.3f}' for k, v in mix['step_s'].items())}): "
              f"cached / student-only {mix['cached_over_student']:.3f}, online / student-only "
              f"{mix['online_over_student']:.3f}, cached / online {mix['cached_over_online']:.3f}")
        data = measure_cache_mix_data(args)
        results.append(dict(method='cache_mix_data', **data))
        print(f"batch cache, data side ({data['samples']} Fashion-MNIST samples): slot + cached "
              f"logits {data['cached_us']:.0f} us/sample, plain {data['plain_us']:.0f} "
              f"us/sample (median), ratio {data['ratio']:.2f}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=1)
    return results


if __name__ == '__main__':
    main()
