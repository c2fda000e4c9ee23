"""A results table in the manner of the papers': mean ± std over seeds, the gain over the
student's baseline and whether that gain is beyond seed noise (Welch's t-test), as Markdown,
as JSON and as a PNG of test accuracy per epoch."""
import json
import math
import os
import os.path as osp
import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

#: two-sided p-value of Welch's t-test under which a gain counts as significant
ALPHA = 0.05


@dataclass
class Row:
    """One method on one student.

    Args:
        key: short name (``vit_kd``); its runs are ``<key>_seed<N>``.
        student: what the student is (``small ViT``); rows of one student share a baseline.
        method: the method's name as the papers write it (``KD``, ``ViTKD + NKD``).
        config: the config file of its runs.
        teacher: key of the teacher it learns from; None for the baseline.
        options: ``--cfg-options`` added to its runs (a probe: one change to a row's config).
        reference: key of the row of the same student that this one adds to (``cnn_kd`` for
            ``TaT + KD``): the record also gets its gain over that row and the p-value.
        extra: a supplementary row (a probe kept beside the table): trained only with
            ``--extras`` or when named in ``--only``, so that the default table fits its budget.
    """
    key: str
    student: str
    method: str
    config: str
    teacher: Optional[str] = None
    options: Tuple[str, ...] = ()
    reference: Optional[str] = None
    extra: bool = False

    @property
    def is_baseline(self) -> bool:
        return self.teacher is None


def mean_std(values: Sequence[float]):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test of equal means; nan when it is undefined (fewer than
    two values in a group, or no variance in either)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return math.nan
    from scipy import stats
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarize(rows: Sequence[Row], accs: Dict[str, List[float]],
              teachers: Dict[str, dict]) -> List[dict]:
    """One record per row with results: student, method, teacher (name and top-1), the seeds'
    accuracies, mean, std, delta vs the student's baseline, Welch p-value, significant.

    ``teachers``: key -> ``dict(name=..., top1=...)``. ``significant`` is True only for a gain
    (delta > 0) with p < ``ALPHA``; a significant loss has ``significant`` False and a negative
    delta with a small p.
    """
    base = {r.student: accs[r.key] for r in rows if r.is_baseline and accs.get(r.key)}
    by_key = {r.key: r for r in rows}
    for r in rows:  # a reference left out of this table (--only) is simply not compared
        ref = by_key.get(r.reference) if r.reference else None
        if ref is not None and ref.student != r.student:
            raise ValueError(f'row {r.key}: its reference {r.reference!r} is a row of '
                             f'{ref.student}, not of {r.student}')
    out = []
    for r in rows:
        values = accs.get(r.key)
        if not values:
            continue
        mean, std = mean_std(values)
        rec = dict(key=r.key, student=r.student, method=r.method, config=r.config,
                   teacher=teachers[r.teacher]['name'] if r.teacher else None,
                   teacher_top1=teachers[r.teacher]['top1'] if r.teacher else None,
                   seeds=[round(v, 2) for v in values], mean=round(mean, 2), std=round(std, 2),
                   delta=None, p_value=None, significant=None)
        if not r.is_baseline and r.student in base:
            p = welch_p(values, base[r.student])
            delta = mean - statistics.mean(base[r.student])
            rec.update(delta=round(delta, 2), p_value=None if math.isnan(p) else round(p, 4),
                       significant=bool(delta > 0 and not math.isnan(p) and p < ALPHA))
        if r.reference in by_key and accs.get(r.reference):
            ref = accs[r.reference]
            p = welch_p(values, ref)
            delta = mean - statistics.mean(ref)
            rec.update(reference=by_key[r.reference].method, delta_reference=round(delta, 2),
                       p_reference=None if math.isnan(p) else round(p, 4),
                       significant_reference=bool(delta > 0 and not math.isnan(p)
                                                  and p < ALPHA))
        out.append(rec)
    return out


def _mark(rec: dict) -> str:
    if rec['p_value'] is None:
        return '-' if rec['delta'] is None else 'n/a'
    if rec['p_value'] >= ALPHA:
        return 'no'
    return 'yes' if rec['delta'] > 0 else 'no (worse)'


def _reference_cell(rec: dict) -> str:
    if not rec.get('reference'):
        return '-'
    p = rec['p_reference']
    return (f"{rec['delta_reference']:+.2f} vs {rec['reference']} (p "
            + ('n/a' if p is None else f'{p:.3f}') + ('*' if rec['significant_reference'] else '')
            + ')')


def markdown_table(records: Sequence[dict], teachers: Dict[str, dict]) -> str:
    """The table; teachers last, each with its own top-1. A last column, when a row has a
    reference, gives its gain over that row (Welch p, and * when significant)."""
    with_ref = any(r.get('reference') for r in records)
    lines = ['| student | method | teacher (top-1) | test top-1 (%) | seeds | Δ vs baseline | '
             f'p (Welch) | significant (p < {ALPHA}) |' + (' Δ vs the row it adds to |'
                                                          if with_ref else ''),
             '|---|---|---|---|---|---|---|---|' + ('---|' if with_ref else '')]
    for r in records:
        teacher = f"{r['teacher']} ({r['teacher_top1']:.2f})" if r['teacher'] else '-'
        delta = '-' if r['delta'] is None else f"{r['delta']:+.2f}"
        p = '-' if r['p_value'] is None else f"{r['p_value']:.3f}"
        seeds = ', '.join(f'{v:.2f}' for v in r['seeds'])
        line = (f"| {r['student']} | {r['method']} | {teacher} | {r['mean']:.2f} ± "
                f"{r['std']:.2f} | {seeds} | {delta} | {p} | {_mark(r)} |")
        if with_ref:
            line += f' {_reference_cell(r)} |'
        lines.append(line)
    for t in teachers.values():
        lines.append(f"| {t['name']} | (trained alone) | - | {t['top1']:.2f} | - | - | - | - |"
                     + (' - |' if with_ref else ''))
    return '\n'.join(lines)


def results_json(records: Sequence[dict], teachers: Dict[str, dict], meta: dict) -> dict:
    """The machine-readable table: meta (data, budget, wall time), the significance rule, the
    teachers and one record per row (see :func:`summarize`)."""
    return dict(meta=meta, significance=f"Welch's t-test, two-sided, p < {ALPHA}, gain over the "
                'baseline', teachers=list(teachers.values()), rows=list(records))


def write_json(path: str, content: dict) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(content, f, indent=1)
        f.write('\n')


def plot_curves(rows: Sequence[Row], curves: Dict[str, List[List[float]]], out: str,
                title: str) -> str:
    """A panel per student: test top-1 per epoch, a line per method (mean over seeds, error
    bars ± one std)."""
    import numpy as np

    from mmkd.analysis.plotting import new_figure, save_figure
    students = list(dict.fromkeys(r.student for r in rows))
    fig = new_figure(1, len(students), (6.0, 5.5), header=0.4)
    axes = fig.subplots(1, len(students), squeeze=False)[0]
    for ax, student in zip(axes, students):
        student_rows = [x for x in rows if x.student == student]
        for n, r in enumerate(student_rows):
            runs = [c for c in curves.get(r.key, []) if c]
            if not runs:
                continue
            epochs = min(len(c) for c in runs)
            y = np.array([c[:epochs] for c in runs])
            # methods side by side within an epoch, so that their error bars do not overlap
            x = np.arange(1, epochs + 1) + 0.25 * (n / max(len(student_rows) - 1, 1) - 0.5)
            style = dict(color='k', lw=2.2) if r.is_baseline else dict(color=f'C{n % 10}', lw=1.4)
            ax.errorbar(x, y.mean(0), yerr=y.std(0, ddof=1) if len(runs) > 1 else None,
                        marker='o', ms=4, capsize=3, label=f'{r.method} ({len(runs)} seeds)',
                        **style)
        ax.set_xticks(range(1, max((len(c) for k in curves for c in curves[k]), default=1) + 1))
        ax.set_title(student)
        ax.set_xlabel('epoch')
        ax.set_ylabel('test top-1 (%)')
        ax.grid(alpha=0.3)
        # below the panel: with a short budget the points fill the panel
        ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(title)
    return save_figure(fig, out)
