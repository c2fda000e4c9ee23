"""A data preprocessor's normalisation, and the affine map that re-normalises its output for a
model trained with another one (a distiller's ``teacher_norm``, the analysis tools)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor


def preprocessor_norm(pre: nn.Module) -> Optional[Tuple[Tensor, Tensor]]:
    """``(mean, std)``, each (C,), of a data preprocessor that normalises its inputs; ``None``
    for one that does not (mmpretrain's and mmseg's register the two buffers only then)."""
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if isinstance(mean, Tensor) and isinstance(std, Tensor):
        return mean.flatten(), std.flatten()
    return None


def renormalisation(pre: nn.Module, mean: Sequence[float],
                    std: Sequence[float]) -> Tuple[Tensor, Tensor]:
    """``(scale, shift)``, each (1, C, 1, 1), such that ``x * scale + shift`` is the batch
    ``pre`` outputs normalised with ``mean``/``std`` instead (in the pixel range of the data):
    ``x_t = (x_s * std_s + mean_s - mean_t) / std_t``. Exact also after mixup/cutmix, whose
    convex combinations commute with an affine map."""
    own = preprocessor_norm(pre)
    s_mean, s_std = own if own is not None else (torch.zeros(1), torch.ones(1))
    t_mean = torch.tensor(mean, dtype=torch.float32)
    t_std = torch.tensor(std, dtype=torch.float32)
    return ((s_std / t_std).view(1, -1, 1, 1),
            ((s_mean - t_mean) / t_std).view(1, -1, 1, 1))
