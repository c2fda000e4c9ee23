"""Figures of a known pixel size, drawn with matplotlib's Agg canvas (no pyplot, no global
backend: safe in scripts, tests and notebooks alike)."""
import os
import os.path as osp
from typing import Tuple


def figure_size(rows: int, cols: int, panel: Tuple[float, float], header: float = 0.0,
                dpi: int = 100) -> Tuple[int, int]:
    """(width, height) in pixels of a grid of ``rows x cols`` panels of ``panel`` inches with
    ``header`` inches above it."""
    return (int(round(cols * panel[0] * dpi)), int(round((rows * panel[1] + header) * dpi)))


def new_figure(rows: int, cols: int, panel: Tuple[float, float], header: float = 0.0,
               dpi: int = 100, constrained: bool = True):
    """A figure of :func:`figure_size`; with ``constrained`` layout, matplotlib places titles,
    labels and colorbars inside it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(cols * panel[0], rows * panel[1] + header), dpi=dpi,
                 layout='constrained' if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, out: str) -> str:
    """Save as PNG at the figure's own size and dpi (no tight bbox: the size stays known)."""
    d = osp.dirname(osp.abspath(out))
    os.makedirs(d, exist_ok=True)
    fig.savefig(out, dpi=fig.dpi, format='png')
    return out
