"""The sweep tables: arms (runs pooled over seeds: mean, 95 % CI, n), paired differences against a
baseline arm, and one row per run; columns = what varied, status, final training metrics, eval.

Written as ``report.md`` (4 significant digits, for reading), ``report.csv`` (one row per run,
full precision) and ``report_arms.csv`` (per arm and metric: mean, ci95_low, ci95_high, n).
Columns that never vary across the sweep's overrides are dropped from the parameter block; loss
and tau are always shown. "final/*" is the last logged window (``final_window``).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

from .arms import Arm, PairedComparison
from .collect import RunRecord
from .final_window import FINAL_WINDOW_FRACTION

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


ARM_TRAIN_KEYS = ("final/loss", "final/rewards/margins", "final/rewards/accuracies", "final/logps/chosen")


def arm_metrics(arms: Sequence[Arm]) -> list[str]:
    """Every metric any counted run has: eval results first, then final training metrics."""
    keys: list[str] = []
    for arm in arms:
        for run in arm.runs:
            keys += [f"eval/{k}" for k in run.eval if f"eval/{k}" not in keys]
    for arm in arms:
        for run in arm.runs:
            keys += [f"final/{k}" for k in run.final if k not in ("step", "final_rows") and f"final/{k}" not in keys]
    for arm in arms:
        for run in arm.runs:
            keys += [f"lr/{k}" for k in run.route_lr if f"lr/{k}" not in keys]
    return keys


def headline_metrics(arms: Sequence[Arm]) -> list[str]:
    """The columns of the markdown arm table: each benchmark's headline, mean gold, a few training ones."""
    keys: list[str] = []
    for arm in arms:
        for run in arm.runs:
            keys += [f"eval/{k}" for k in run.headline.values() if f"eval/{k}" not in keys]
    available = set(arm_metrics(arms))
    keys += [k for k in ("eval/sandbox/mean_gold_score",) if k in available and k not in keys]
    lr = [k for k in sorted(available) if k.startswith("lr/") and k.endswith("/mean_lr_fraction_of_peak")]
    return keys + [k for k in ARM_TRAIN_KEYS if k in available] + lr


def arm_lines(arms: Sequence[Arm]) -> list[str]:
    metrics = headline_metrics(arms)
    header = ["arm", "n", "failed", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in arms:
        cells = [arm.label, str(len(arm.runs)), str(arm.failed), *[arm.estimate(m).text() for m in metrics]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def identical_seeds_note(arms: Sequence[Arm]) -> list[str]:
    """Arms whose seeds agree exactly on every headline metric: their "± 0" is not a measured
    precision; the seed changed nothing that reached the results (a deterministic order and model)."""
    metrics = headline_metrics(arms)
    same = [a.label for a in arms if len(a.runs) > 1 and metrics
            and all(a.estimate(m).n < 2 or a.estimate(m).half_width == 0 for m in metrics)]
    if not same:
        return []
    return [f"Seeds gave identical results in {', '.join(same)}: their ± 0 measures no noise (the seed changed "
            "nothing these runs depend on), so comparisons with them rest on the other arm's spread alone.", ""]


def paired_lines(baseline: Arm, metric: str, comparisons: Sequence[PairedComparison]) -> list[str]:
    lines = [f"## Paired differences against {baseline.label} on {metric}", "",
             "arm minus baseline, matched on the seed (unit `seed`: the spread over training seeds, the test of "
             "the method) and, where the results record per-prompt scores, on seed and prompt (unit `seed x "
             "prompt`: only the evaluation prompts' sampling, a test of these checkpoints, not of the method); "
             "beyond noise = the 95 % CI excludes 0.", "",
             "| arm | difference | 95 % CI | n pairs | unit | beyond noise |", "|---|---|---|---|---|---|"]
    for c in comparisons:
        d = c.difference
        ci = "" if d.n < 2 else f"[{d.low:.4g}, {d.high:.4g}]"
        mean = "" if d.n == 0 else f"{d.mean:.4g}"
        lines.append(f"| {c.arm.label} | {mean} | {ci} | {d.n} | {c.unit} | {'yes' if d.excludes_zero else 'no'} |")
    return lines


def write_arms_csv(arms: Sequence[Arm], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "metric", "mean", "ci95_low", "ci95_high", "n", "failed"])
        for arm in arms:
            for metric in arm_metrics(arms):
                e = arm.estimate(metric)
                if e.n:
                    writer.writerow([arm.label, metric, e.mean, e.low, e.high, e.n, arm.failed])
    return path


def write_tables(runs: Sequence[RunRecord], out_dir: Path, title: str, plots: Sequence[Path] = (),
                 arms: Sequence[Arm] = (), paired: Sequence[tuple[Arm, str, Sequence[PairedComparison]]] = ()
                 ) -> tuple[Path, Path]:
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
             ""]
    if arms:
        write_arms_csv(arms, out_dir / "report_arms.csv")
        lines += ["## Arms: mean ± 95 % CI half-width over seeds (t-based), n = seeds", ""] + arm_lines(arms) + [""]
        lines += identical_seeds_note(arms)
    for table in paired:
        lines += paired_lines(*table) + [""]
    lines += ["## Runs", "", f"final/* = mean of the metrics.jsonl rows in the last {FINAL_WINDOW_FRACTION:.0%} of "
              "logged steps; rows at step <= 1 (before the first update) never count.", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    no_final = [r for r in runs if r.curves and not r.final]
    if no_final:
        lines += ["", f"{len(no_final)} run(s) logged no metrics row after the first update (only step 1, computed "
                  "on the initial weights), so their final/* columns are empty: log the last step, or set "
                  "trainer.logging_steps below trainer.max_steps."]
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- job {_label(r, out_dir)} (`{r.dir}`): {r.error}" for r in failed]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path
