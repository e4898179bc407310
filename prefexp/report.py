"""``python -m prefexp.report <sweep dir> [--baseline loss=dpo] [--metric eval/sandbox/win_rate]``:
tables and plots of a sweep, readable without W&B.

Writes into the sweep dir: ``report.md`` (arms = runs that differ only in seed: mean, 95 % CI and
n of each evaluation result and final training metric; paired differences against ``--baseline``
when given; one row per run), ``report.csv`` (per run), ``report_arms.csv`` (per arm and metric),
``arms.png``, ``eval_vs_tau.png`` (or ``margins_vs_tau.png`` before any evaluation; only when the
sweep sets tau), ``curves.png`` and, when runs logged probes, ``displacement.png``. Also works on a
single run dir, or any folder of runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import print_error
from .redact import install_log_redaction
from .reporting.collect import collect_runs
from .reporting.write import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefexp.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun sweep dir (outputs/sweeps/<date>/<time>) or a run dir")
    parser.add_argument("--baseline", help="the arm to compare against, as key=value[,key=value] (e.g. loss=dpo)")
    parser.add_argument("--metric", action="append", default=[],
                        help="a metric of the paired differences (eval/<bench>/<name> or final/<name>); repeat for "
                             "one table each")
    args = parser.parse_args(argv)
    install_log_redaction()  # no log line carries an API key (prefexp/redact.py)
    if not args.sweep_dir.is_dir():
        print_error(f"{args.sweep_dir} is not a directory")
        return 2
    for metric in args.metric:
        if not metric.startswith(("eval/", "final/")):
            print_error(f"--metric {metric}: expected eval/<benchmark>/<name> or final/<name>")
            return 2
    runs = collect_runs(args.sweep_dir)
    if not runs:
        print_error(f"no run dirs (with .hydra/overrides.yaml) under {args.sweep_dir}")
        return 2
    try:
        md = write_report(args.sweep_dir, runs, args.baseline, args.metric)
    except ValueError as exc:  # a --baseline that matches no arm, or several
        print_error(f"{exc}")
        return 2
    print(md.read_text())
    print(f"written: {md}, {md.with_suffix('.csv')} and plots in {args.sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
