"""Stopping (or skipping) a training step whose loss is not finite, before it updates anything.

Where the check lives, and why there: every distiller's losses pass through
``BaseDistiller.parse_losses`` exactly once per iteration, after the forward pass and before
``optim_wrapper.update_params``, whichever ``train_step`` runs the iteration (MMEngine's
``BaseModel.train_step``, MMEngine's DDP wrapper, which calls ``module.parse_losses``, or
``CrossArchDistiller``'s own two-optimizer step). A hook's ``after_train_iter`` would see the
losses only after the NaN had reached the weights; an ``OptimWrapper`` subclass would see only
the summed loss (no key to name) and would have to be configured in place of every optimizer
wrapper type (``OptimWrapper``, ``AmpOptimWrapper``, ``AutocastOptimWrapper``, ...). The check
costs one device-to-host copy of a bool per iteration (and, in a distributed run, one
all-reduce of it, so that every rank takes the same decision: a rank stopping or skipping alone
would leave the others waiting in the gradient all-reduce).
"""
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.logging import MessageHub, MMLogger
from torch import Tensor

#: the message hub's runtime key of the skip count: saved in checkpoints with the hub's state,
#: so ``max_skips`` counts over the whole run, resumes included
SKIPS_KEY = 'nan_guard_skips'
ACTIONS = ('raise', 'skip')


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite (and the guard was told to stop, or ran out of skips)."""


class NonFiniteLossGuard:
    """Checks the losses of each training step for NaN/Inf.

    Args:
        action (str): ``'raise'`` (default): stop the run at the first non-finite loss with a
            :class:`NonFiniteLossError` naming the loss key(s), the iteration and each one's
            last finite value, before that step updates any parameter. ``'skip'``: drop that
            step (no optimizer update, gradients zeroed), log it with a warning and count it;
            stop with the error once more than ``max_skips`` steps were skipped.
        max_skips (int): the number of steps ``'skip'`` may drop over the run. Default 10.

    Only the keys containing ``'loss'`` (those MMEngine sums into the total that is
    back-propagated) and the total ``'loss'`` are checked; logged parts such as
    ``kd.weight_scale`` are not.
    """

    def __init__(self, action: str = 'raise', max_skips: int = 10):
        if action not in ACTIONS:
            raise ValueError(f"nan_guard: action must be one of {ACTIONS}, got {action!r}")
        if int(max_skips) < 0:
            raise ValueError(f'nan_guard: max_skips must be >= 0, got {max_skips}')
        self.action = action
        self.max_skips = int(max_skips)
        # key -> (last finite value as a 0-d tensor, iteration): kept on the device, read only
        # for an error message
        self._last: Dict[str, Tuple[Tensor, int]] = {}
        self._calls = 0  # the iteration outside a runner (no message hub 'iter')

    @staticmethod
    def build(cfg) -> Optional['NonFiniteLossGuard']:
        """A guard from ``nan_guard``: ``None``/``False`` (off), ``True`` (defaults), a dict of
        arguments, or a guard."""
        if cfg is None or cfg is False:
            return None
        if cfg is True:
            return NonFiniteLossGuard()
        if isinstance(cfg, NonFiniteLossGuard):
            return cfg
        if isinstance(cfg, dict):
            return NonFiniteLossGuard(**cfg)
        raise TypeError(f'nan_guard: expected a dict, None or a bool, got {type(cfg).__name__}')

    # -- state --------------------------------------------------------------------------------
    @property
    def skips(self) -> int:
        return int(MessageHub.get_current_instance().get_info(SKIPS_KEY, 0) or 0)

    def _iteration(self) -> int:
        """1-based, as MMEngine's log lines count (``Iter(train) [k/...]``): runner.iter + 1."""
        it = MessageHub.get_current_instance().get_info('iter')
        return (int(it) if it is not None else self._calls - 1) + 1

    # -- the check ------------------------------------------------------------------------------
    def check(self, log_vars: 'OrderedDict[str, Tensor]') -> bool:
        """Whether this step may update the parameters. Raises :class:`NonFiniteLossError`
        (action ``'raise'``, or too many skips); returns False for a step to skip."""
        self._calls += 1
        keys = [k for k, v in log_vars.items() if 'loss' in k and isinstance(v, Tensor)]
        if not keys:
            return True
        values = torch.stack([log_vars[k].detach().float().reshape(()) for k in keys])
        finite = torch.isfinite(values)
        bad = (~finite).any()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = bad.to(torch.int32)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            any_bad = bool(flag.item())
        else:
            any_bad = bool(bad.item())  # the one synchronisation per step
        it = self._iteration()
        if not any_bad:
            self._last.update((k, (v, it)) for k, v in zip(keys, values))
            return True

        finite_list = finite.tolist()
        for k, v, ok in zip(keys, values, finite_list):
            if ok:
                self._last[k] = (v, it)
        # the loss terms first, then their sum 'loss' (non-finite whenever one of them is)
        bad_keys = sorted((k for k, ok in zip(keys, finite_list) if not ok),
                          key=lambda k: k == 'loss')
        what = self.describe(bad_keys, values, keys, it)
        if self.action == 'raise':
            raise NonFiniteLossError(
                f'{what}. The run is stopped before this step updates any parameter. To skip '
                "such steps instead: model.nan_guard=dict(action='skip', max_skips=N)")
        skips = self.skips + 1
        MessageHub.get_current_instance().update_info(SKIPS_KEY, skips)
        if skips > self.max_skips:
            raise NonFiniteLossError(
                f'{what}. nan_guard skipped {skips - 1} non-finite steps already, '
                f'max_skips={self.max_skips}: the run is stopped')
        MMLogger.get_current_instance().warning(
            f'nan_guard: skipped iteration {it} (no parameter update, gradients zeroed), '
            f'{skips} of at most {self.max_skips} skips: {what}')
        return False

    def describe(self, bad_keys, values: Tensor, keys, it: int) -> str:
        if not bad_keys:  # finite here, non-finite on another rank
            return (f'non-finite loss at iteration {it} on another rank of the distributed run '
                    '(that rank names the loss)')
        now = dict(zip(keys, values.tolist()))
        parts = []
        for k in bad_keys:
            last = self._last.get(k)
            seen = (f'last finite value {float(last[0]):.6g} at iteration {last[1]}'
                    if last is not None else 'no finite value before')
            parts.append(f'{k} = {now[k]} ({seen})')
        return f'non-finite loss at iteration {it}: ' + '; '.join(parts)
