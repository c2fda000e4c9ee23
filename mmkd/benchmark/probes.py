"""Probes of one results-table row: the same row with one change to its config at a time, on
the same seeds, beside its baseline, with the final loss values of every run (the task loss
next to each distillation term) so that a method below its baseline can be investigated."""
import os.path as osp
import statistics
from typing import Dict, List, Sequence, Tuple

from .report import Row


def parse_probe(text: str) -> Tuple[str, Tuple[str, ...]]:
    """``'name:key=value;key=value'`` -> (name, options); ``'name:'`` is the row unchanged."""
    name, sep, opts = text.partition(':')
    if not sep or not name:
        raise ValueError(f"probe {text!r}: expected 'name:key=value[;key=value...]'")
    options = tuple(o for o in opts.split(';') if o)
    bad = [o for o in options if '=' not in o]
    if bad:
        raise ValueError(f'probe {name!r}: options without "=": {bad}')
    return name, options


def probe_rows(rows: Sequence[Row], key: str, probes: Sequence[str]) -> List[Row]:
    """The baseline of row ``key``'s student, the row itself, and one row per probe."""
    by_key = {r.key: r for r in rows}
    if key not in by_key:
        raise SystemExit(f'unknown row {key!r}; rows: {list(by_key)}')
    row = by_key[key]
    if row.is_baseline:
        raise SystemExit(f'{key} is a baseline: probe a method row')
    base = next(r for r in rows if r.student == row.student and r.is_baseline)
    out = [base, row]
    for text in probes:
        name, options = parse_probe(text)
        out.append(Row(f'{key}-{name}', row.student, f'{row.method} [{name}]', row.config,
                       row.teacher, row.options + options))
    return out


def final_losses(work_dir: str, last: int = 3) -> Dict[str, float]:
    """Every logged loss (``loss*``) and loss part (``<loss>.<part>``) of the latest run in
    ``work_dir``, averaged over its ``last`` logged training iterations."""
    from mmkd.analysis.curves import Run
    try:
        train = [r for r in Run(work_dir).train if 'loss' in r][-last:]
    except FileNotFoundError:
        return {}
    keys = [k for k in (train[-1] if train else {}) if k.startswith('loss') or
            ('.' in k and not k.endswith('lr') and '/' not in k)]
    return {k: statistics.mean(r[k] for r in train if k in r) for k in keys}


def losses_table(rows: Sequence[Row], work_root: str, seeds: int) -> str:
    """Markdown: per row, the final losses averaged over its seeds."""
    per_row = {}
    for r in rows:
        runs = [final_losses(osp.join(work_root, f'{r.key}_seed{s}')) for s in range(seeds)]
        keys = dict.fromkeys(k for run in runs for k in run)
        per_row[r.key] = {k: statistics.mean(run[k] for run in runs if k in run) for k in keys}
    lines = ['| row | change | final losses (last 3 logged iterations, mean over seeds) |',
             '|---|---|---|']
    for r in rows:
        vals = ', '.join(f'{k} {v:.3f}' for k, v in per_row[r.key].items())
        lines.append(f"| {r.method} | {', '.join(r.options) or '-'} | {vals} |")
    return '\n'.join(lines)
