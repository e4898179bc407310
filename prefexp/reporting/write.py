"""The report of one or more sweep / run dirs: the headline table (the leaderboard), paired
differences against the baseline, the runs, CSVs and plots."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from .arms import default_baseline, find_baseline, group_arms, paired_against
from .collect import RunRecord, collect_many
from .table import headline_metrics, write_tables


def _paired(arms, baseline: Optional[str], metrics: Sequence[str]) -> tuple[list, list[str]]:
    """(paired tables, notes): against ``baseline``, else the sweep's plain-DPO arm if there is one."""
    base = find_baseline(arms, baseline) if baseline is not None else default_baseline(arms)
    if base is None:
        return [], []
    heads = [m for m in headline_metrics(arms) if m.startswith("eval/") and not m.endswith("ties_percent")]
    tables = [(base, metric, paired_against(arms, base, metric))
              for metric in list(metrics) or [heads[0] if heads else "final/rewards/margins"]]
    how = "named by --baseline" if baseline is not None else "the plain DPO arm (loss=dpo, no router); --baseline names another"
    return tables, [f"Baseline: {base.label} ({how}).", ""]


def write_report(dirs: Path | Sequence[Path], runs: list[RunRecord] | None = None, baseline: Optional[str] = None,
                 metrics: Sequence[str] = (), out_dir: Optional[Path] = None) -> Path:
    """Write the tables and plots of ``dirs`` (one dir, or several: one leaderboard across them)
    into ``out_dir`` (default: the one input dir); returns the report.md path. ``baseline``
    (an arm's label or ``key=value[,...]``; default: the plain-DPO arm) is what the paired
    differences are taken against, one table per metric of ``metrics`` (default: the first
    benchmark's headline, else final/rewards/margins)."""
    from .displacement import plot_displacement
    from .plots import plot_against_tau, plot_arms, plot_curves

    dirs = [Path(dirs)] if isinstance(dirs, (str, Path)) else [Path(d) for d in dirs]
    if out_dir is None:
        if len(dirs) != 1:
            raise ValueError("a report over several dirs needs out_dir")
        out_dir = dirs[0]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect_many(dirs) if runs is None else runs
    arms = group_arms(runs)
    paired, notes = _paired(arms, baseline, metrics)
    plots = []
    if any(a.runs for a in arms):
        plots.append(plot_arms(arms, out_dir))
        if any("tau" in r.params for r in runs):
            plots.append(plot_against_tau(arms, out_dir))
        plots.append(plot_curves(arms, out_dir))
        displacement = plot_displacement(arms, out_dir)
        if displacement is not None:
            plots.append(displacement)
    title = dirs[0].name if len(dirs) == 1 else f"leaderboard of {len(dirs)} dirs"
    inputs = [(chr(ord("A") + i) if i < 26 else f"S{i}", d.resolve()) for i, d in enumerate(dirs)] if len(dirs) > 1 else []
    md, _ = write_tables(runs, out_dir, title, plots, arms, paired, notes, inputs)
    return md
