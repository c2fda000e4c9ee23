"""Where things are in an mmpretrain classifier: backbone stages and token layouts."""
from typing import List, Tuple

import torch.nn as nn


def stage_paths(model: nn.Module) -> List[str]:
    """The module paths of the backbone's stages (ViT blocks, ResNet layers, ConvNeXt/Swin
    stages, ...), shallow to deep; ``['backbone']`` when the backbone names none."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        return []
    for attr in ('res_layers', 'layers', 'stages'):
        value = getattr(backbone, attr, None)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            return [f'backbone.{v}' for v in value]
        if isinstance(value, (nn.ModuleList, nn.Sequential)) and len(value):
            return [f'backbone.{attr}.{i}' for i in range(len(value))]
    return ['backbone']


def token_layout(model: nn.Module, num_tokens: int) -> Tuple[int, Tuple[int, int]]:
    """``(number of extra tokens, (h, w) patch grid)`` of a token sequence of the model."""
    backbone = getattr(model, 'backbone', model)
    extra = int(getattr(backbone, 'num_extra_tokens', 0))
    patches = num_tokens - extra
    grid = getattr(backbone, 'patch_resolution', None)
    if grid is not None and int(grid[0]) * int(grid[1]) == patches:
        return extra, (int(grid[0]), int(grid[1]))
    side = int(round(patches ** 0.5))
    if side * side == patches:
        return extra, (side, side)
    return extra, (1, patches)
