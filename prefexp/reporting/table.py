"""The sweep table: one row per run; columns = what varied, status, final training metrics, eval.

Written twice: ``report.csv`` (full precision, for pandas / spreadsheets) and ``report.md``
(4 significant digits, for reading). Columns that never vary across the sweep's overrides are
dropped from the parameter block; loss and tau are always shown.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

from .collect import RunRecord

TRAIN_KEYS = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
              "logps/chosen", "logps/rejected", "route/sft_fraction")


def varying_params(runs: Sequence[RunRecord]) -> list[str]:
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.params if k not in keys]
    return [k for k in keys if k not in ("loss", "tau") and len({r.params.get(k) for r in runs}) > 1]


def _label(run: RunRecord, root: Path) -> str:
    if run.job_num is not None:
        return str(run.job_num)
    try:
        return str(run.dir.relative_to(root))
    except ValueError:
        return run.dir.name


def columns(runs: Sequence[RunRecord], root: Path) -> tuple[list[str], list[list[Any]]]:
    params = varying_params(runs)
    eval_keys: list[str] = []
    for run in runs:
        eval_keys += [k for k in run.eval if k not in eval_keys]
    header = ["job", "status", "loss", "tau", *params, "step", *[f"final/{k}" for k in TRAIN_KEYS],
              *[f"eval/{k}" for k in eval_keys]]
    rows = []
    for run in runs:
        final = run.final
        rows.append([_label(run, root), run.status, run.loss, run.tau, *[run.params.get(k) for k in params],
                     final.get("step"), *[final.get(k) for k in TRAIN_KEYS], *[run.eval.get(k) for k in eval_keys]])
    return header, rows


def _md(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_tables(runs: Sequence[RunRecord], out_dir: Path, title: str, plots: Sequence[Path] = ()) -> tuple[Path, Path]:
    header, rows = columns(runs, out_dir)
    csv_path = out_dir / "report.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header + ["dir"])
        for run, row in zip(runs, rows):
            writer.writerow(["" if v is None else v for v in row] + [str(run.dir)])
    lines = [f"# Sweep report: {title}", "",
             f"{len(runs)} runs: " + ", ".join(f"{sum(r.status == s for r in runs)} {s}"
                                               for s in ("ok", "failed", "incomplete") if any(r.status == s for r in runs)),
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- job {_label(r, out_dir)} (`{r.dir}`): {r.error}" for r in failed]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path
