"""Feature taps: capture named intermediate tensors during the forward pass a model already does.

A tap is ``name -> 'module.path'`` (the module's output) or
``name -> dict(path='module.path', io='input')`` (its first positional input).
"""
import contextlib
import difflib
from typing import Dict, Iterator, Optional, Union

import torch.nn as nn

TapSpec = Union[str, dict]


def find_module(model: nn.Module, path: str, role: str) -> nn.Module:
    """``model``'s sub-module at ``path``, or an error listing the nearest existing names."""
    modules = dict(model.named_modules())
    if path in modules:
        return modules[path]
    near = difflib.get_close_matches(path, [n for n in modules if n], n=6, cutoff=0.3)
    raise KeyError(f"the {role} has no module '{path}'. Nearest existing names: {near}")


class FeatureTaps:
    """Forward hooks on ``model`` that keep each tap's tensor, but only inside
    :meth:`recording`.

    Outside a recording the hooks keep nothing: an evaluation, a ``mode='tensor'`` call or a
    loss that calls a tapped module again (CSKD's distillation head on the patch tokens) leaves
    no graph-holding tensor behind and overwrites no record. ``paths``: ``name -> 'path (io)'``,
    for messages; ``specs``: ``name -> dict(path, io)``, for code that hooks the same modules
    (the speed benchmark's hand-written step).
    """

    def __init__(self, model: nn.Module, taps: Dict[str, TapSpec], role: str):
        self.role = role
        self.paths: Dict[str, str] = {}
        self.specs: Dict[str, dict] = {}
        self._records: Optional[Dict[str, object]] = None  # a dict only while recording
        self._handles = []
        for name, spec in taps.items():
            if isinstance(spec, str):
                spec = dict(path=spec)
            path, io = spec['path'], spec.get('io', 'output')
            if io not in ('input', 'output'):
                raise ValueError(f"{role} tap '{name}': io must be 'input' or 'output', got {io!r}")
            try:
                module = find_module(model, path, role)
            except KeyError as e:
                raise KeyError(f"{role} tap '{name}': {e.args[0]}") from None
            self.paths[name] = f'{path} ({io})'
            self.specs[name] = dict(path=path, io=io)
            self._handles.append(module.register_forward_hook(self._recorder(name, io)))

    def _recorder(self, name: str, io: str):
        def hook(module, args, output):
            if self._records is not None:
                self._records[name] = args[0] if io == 'input' else output
        return hook

    @contextlib.contextmanager
    def recording(self) -> Iterator[Dict[str, object]]:
        """``with taps.recording() as records: model(...)``: ``records`` (``name -> tensor``,
        the last call of each tapped module) is filled by the forward passes run inside, and by
        nothing after. Recordings do not nest: a second one inside the first is an error."""
        if self._records is not None:
            raise RuntimeError(f'the {self.role} taps are already recording: a forward pass '
                               'inside another one of the same model?')
        records: Dict[str, object] = {}
        self._records = records
        try:
            yield records
        finally:
            self._records = None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
