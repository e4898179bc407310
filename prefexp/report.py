"""``python -m prefexp.report DIR... [--out DIR] [--baseline loss=dpo] [--metric eval/sandbox/win_rate]``:
tables and plots of one or more sweeps (or run dirs), readable without W&B.

``report.md`` opens with the headline table: arms (runs that differ only in seed) x each
benchmark's headline metric, its share of ties and a few training metrics, as mean ± 95 % CI with
n, best first; over several dirs it is one leaderboard across them. Then the paired differences
against the baseline (default: the plain DPO arm, loss=dpo with no router; ``--baseline`` names
another, by label or key=value) and a short table of the runs. The wide tables are CSVs linked
from it: ``report.csv`` (per run), ``report_arms.csv`` (per arm and metric), ``report_tasks.csv``
(per arm and task). Plots: ``arms.png``, ``eval_vs_tau.png`` (or ``margins_vs_tau.png`` before
any evaluation; only when the runs set tau), ``curves.png`` and, when runs logged probes,
``displacement.png``. Written into the one input dir, or ``--out`` (needed for several).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import print_error
from .redact import install_log_redaction
from .reporting.collect import collect_many
from .reporting.write import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prefexp.report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                        help="multirun sweep dirs (outputs/sweeps/<date>/<time>) or run dirs; several = one leaderboard")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the one DIR; required for several)")
    parser.add_argument("--baseline", help="the arm to compare against: its label or key=value[,key=value] "
                                           "(default: the plain DPO arm, loss=dpo without a router)")
    parser.add_argument("--metric", action="append", default=[],
                        help="a metric of the paired differences (eval/<bench>/<name> or final/<name>); repeat for "
                             "one table each")
    args = parser.parse_args(argv)
    install_log_redaction()  # no log line carries an API key (prefexp/redact.py)
    for d in args.dirs:
        if not d.is_dir():
            print_error(f"{d} is not a directory")
            return 2
    if len(args.dirs) > 1 and args.out is None:
        print_error("several DIRs: pass --out DIR for the leaderboard (e.g. --out outputs/reports/cmp)")
        return 2
    for metric in args.metric:
        if not metric.startswith(("eval/", "final/")):
            print_error(f"--metric {metric}: expected eval/<benchmark>/<name> or final/<name>")
            return 2
    runs = collect_many(args.dirs)
    if not runs:
        print_error(f"no run dirs (with .hydra/overrides.yaml) under {' '.join(map(str, args.dirs))}")
        return 2
    try:
        md = write_report(args.dirs, runs, args.baseline, args.metric, out_dir=args.out)
    except ValueError as exc:  # a --baseline that matches no arm, or several
        print_error(f"{exc}")
        return 2
    print(md.read_text())
    print(f"written: {md}, the CSVs and plots in {md.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
