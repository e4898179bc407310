"""``python -m prefexp.report <sweep dir>``: a table and plots of a sweep, readable without W&B.

Writes into the sweep dir: ``report.md`` and ``report.csv`` (runs x final training metrics x eval
results from each run's ``eval/*/results.json``), ``eval_vs_tau.png`` (or ``margins_vs_tau.png``
before any evaluation) and ``curves.png``. Also works on a single run dir, or any folder of runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .reporting.collect import RunRecord, collect_runs
from .reporting.table import varying_params, write_tables


def write_report(sweep_dir: Path, runs: list[RunRecord] | None = None) -> Path:
    """Write the table and plots for ``sweep_dir``; returns the report.md path."""
    from .reporting.plots import plot_against_tau, plot_curves

    sweep_dir = Path(sweep_dir)
    runs = collect_runs(sweep_dir) if runs is None else runs
    plots = []
    if runs:
        vary = varying_params(runs)
        plots = [plot_against_tau(runs, sweep_dir, vary), plot_curves(runs, sweep_dir, ["loss", "tau", *vary])]
    md, _ = write_tables(runs, sweep_dir, sweep_dir.name, plots)
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefexp.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun sweep dir (outputs/sweeps/<date>/<time>) or a run dir")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    runs = collect_runs(args.sweep_dir)
    if not runs:
        print(f"error: no run dirs (with .hydra/overrides.yaml) under {args.sweep_dir}", file=sys.stderr)
        return 2
    md = write_report(args.sweep_dir, runs)
    print(md.read_text())
    print(f"written: {md}, {md.with_suffix('.csv')} and plots in {args.sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
