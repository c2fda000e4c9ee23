"""Feature taps: capture named intermediate tensors during the forward pass a model already does.

A tap is ``name -> 'module.path'`` (the module's output) or
``name -> dict(path='module.path', io='input')`` (its first positional input).
"""
import difflib
from typing import Dict, Union

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
    """Registers forward hooks on ``model`` and keeps the latest tensor of every tap.

    ``records`` is filled by the model's own forward and emptied by :meth:`pop`, so captured
    tensors do not outlive the step that used them. ``paths``: ``name -> 'path (io)'``, for
    messages; ``specs``: ``name -> dict(path, io)``, for code that hooks the same modules
    (the speed benchmark's hand-written step).
    """

    def __init__(self, model: nn.Module, taps: Dict[str, TapSpec], role: str):
        self.role = role
        self.records: Dict[str, object] = {}
        self.paths: Dict[str, str] = {}
        self.specs: Dict[str, dict] = {}
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
            self.records[name] = args[0] if io == 'input' else output
        return hook

    def pop(self) -> Dict[str, object]:
        records, self.records = self.records, {}
        return records

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
