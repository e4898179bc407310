"""The report of a sweep (or run) dir: tables, arms with CIs, paired differences and plots."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from .arms import find_baseline, group_arms, paired_against
from .collect import RunRecord, collect_runs
from .table import headline_metrics, write_tables


def write_report(sweep_dir: Path, runs: list[RunRecord] | None = None, baseline: Optional[str] = None,
                 metrics: Sequence[str] = ()) -> Path:
    """Write the tables and plots for ``sweep_dir``; returns the report.md path. ``baseline``
    (``key=value[,...]``) selects the arm the paired differences are taken against, one table per
    metric of ``metrics`` (default: the first benchmark's headline, else final/rewards/margins)."""
    from .displacement import plot_displacement
    from .plots import plot_against_tau, plot_arms, plot_curves

    sweep_dir = Path(sweep_dir)
    runs = collect_runs(sweep_dir) if runs is None else runs
    arms = group_arms(runs)
    paired = []
    if baseline is not None:
        base = find_baseline(arms, baseline)
        heads = [m for m in headline_metrics(arms) if m.startswith("eval/")]
        for metric in list(metrics) or [heads[0] if heads else "final/rewards/margins"]:
            paired.append((base, metric, paired_against(arms, base, metric)))
    plots = []
    if any(a.runs for a in arms):
        plots.append(plot_arms(arms, sweep_dir))
        if any("tau" in r.params for r in runs):
            plots.append(plot_against_tau(arms, sweep_dir))
        plots.append(plot_curves(arms, sweep_dir))
        displacement = plot_displacement(arms, sweep_dir)
        if displacement is not None:
            plots.append(displacement)
    md, _ = write_tables(runs, sweep_dir, sweep_dir.name, plots, arms, paired)
    return md
