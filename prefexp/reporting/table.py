"""The report's tables. ``report.md`` opens with the headline table (arms = runs pooled over seeds,
x the headline metrics: mean ± 95 % CI, n seeds, the share of tied judgments; at most
``HEADLINE_MAX_COLUMNS`` columns, sorted by the first evaluation headline: the leaderboard), then
the paired differences against the baseline and a short table of the runs; everything wider is
in CSVs linked from it, at full precision: ``report.csv`` (one row per run: what varied, status,
final training metrics, eval results), ``report_arms.csv`` (per arm and metric: mean, ci95_low,
ci95_high, n) and ``report_tasks.csv`` (per arm, benchmark, task and metric). Parameter columns
that never vary are dropped; loss and tau are always shown. "final/*" is the last logged window
(``final_window``).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

from ..config import layout
from .arms import Arm, PairedComparison
from .collect import TIE_SHARE, RunRecord
from .final_window import FINAL_WINDOW_FRACTION

HEADLINE_MAX_COLUMNS = 12
# per-task (per-category) breakdowns of a benchmark: "<bench>/<BREAKDOWN>/<task>/<metric>"
BREAKDOWNS = ("by_task", "per_category")

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
        eval_keys += [k for k in run.eval if k not in eval_keys and not is_breakdown(k)]
    sources = any(r.source for r in runs)
    header = [*(["from"] if sources else []), "job", "status", "loss", "tau", *params, "step", *[f"final/{k}" for k in TRAIN_KEYS],
              *[f"eval/{k}" for k in eval_keys]]
    rows = []
    for run in runs:
        final = run.final
        rows.append([*([run.source] if sources else []), _label(run, root), run.status, run.loss, run.tau, *[run.params.get(k) for k in params],
                     final.get("step"), *[final.get(k) for k in TRAIN_KEYS], *[run.eval.get(k) for k in eval_keys]])
    return header, rows


def is_breakdown(eval_key: str) -> bool:
    parts = eval_key.split("/")
    return len(parts) >= 4 and parts[1] in BREAKDOWNS


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
            keys += [f"eval/{k}" for k in run.eval if f"eval/{k}" not in keys and not is_breakdown(k)]
    for arm in arms:
        for run in arm.runs:
            keys += [f"final/{k}" for k in run.final if k not in ("step", "final_rows") and f"final/{k}" not in keys]
    for arm in arms:
        for run in arm.runs:
            keys += [f"lr/{k}" for k in run.route_lr if f"lr/{k}" not in keys]
    return keys


def headline_metrics(arms: Sequence[Arm], limit: int | None = None) -> list[str]:
    """The metric columns of the headline table: each benchmark's headline and its tie share, the
    sandbox's mean gold score, a few training ones, the per-route learning rates; at most ``limit``."""
    keys: list[str] = []
    available = set(arm_metrics(arms))
    for arm in arms:
        for run in arm.runs:
            for key in run.headline.values():
                bench = key.split("/")[0]
                keys += [k for k in (f"eval/{key}", f"eval/{bench}/{TIE_SHARE}") if k in available and k not in keys]
    keys += [k for k in ("eval/sandbox/mean_gold_score",) if k in available and k not in keys]
    lr = [k for k in sorted(available) if k.startswith("lr/") and k.endswith("/mean_lr_fraction_of_peak")]
    keys += [k for k in ARM_TRAIN_KEYS if k in available] + lr
    return keys if limit is None else keys[:limit]


def _leaderboard_order(arms: Sequence[Arm], metrics: Sequence[str]) -> list[Arm]:
    """Best first on the first evaluation headline (arms without it last, in job order)."""
    first = next((m for m in metrics if m.startswith("eval/") and not m.endswith(TIE_SHARE)), None)
    if first is None:
        return list(arms)
    return sorted(arms, key=lambda a: (a.estimate(first).n == 0, -(a.estimate(first).mean if a.estimate(first).n else 0)))


def header_name(metric: str) -> str:
    return f"{metric.split('/')[1]} ties %" if metric.endswith("/" + TIE_SHARE) else metric


def arm_lines(arms: Sequence[Arm]) -> list[str]:
    sources = any(r.source for a in arms for r in a.runs)
    fixed = ["arm", "n", "failed", *(["from"] if sources else [])]
    metrics = headline_metrics(arms, HEADLINE_MAX_COLUMNS - len(fixed))
    header = fixed + [header_name(m) for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in _leaderboard_order(arms, metrics):
        origin = [",".join(sorted({r.source for r in arm.runs}))] if sources else []
        cells = [arm.label, str(len(arm.runs)), str(arm.failed), *origin, *[arm.estimate(m).text() for m in metrics]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def write_tasks_csv(arms: Sequence[Arm], path: Path) -> Path:
    """Per arm, benchmark, task and metric: mean, ci95_low, ci95_high, n (over seeds)."""
    keys: list[str] = []
    for arm in arms:
        for run in arm.runs:
            keys += [k for k in run.eval if is_breakdown(k) and k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "benchmark", "task", "metric", "mean", "ci95_low", "ci95_high", "n"])
        for arm in arms:
            for key in keys:
                bench, _, task, metric = key.split("/", 3)
                e = arm.estimate(f"eval/{key}")
                if e.n:
                    writer.writerow([arm.label, bench, task, metric, e.mean, e.low, e.high, e.n])
    return path


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


def run_lines(runs: Sequence[RunRecord], root: Path) -> list[str]:
    """The runs at a glance: where, status, seed, last step and each benchmark's headline."""
    heads: list[str] = []
    for run in runs:
        heads += [k for k in run.headline.values() if k not in heads]
    sources = any(r.source for r in runs)
    header = [*(["from"] if sources else []), "job", "dir", "status", "seed", "step", *heads][:HEADLINE_MAX_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        row = [*([run.source] if sources else []), _label(run, root), run.dir.name, run.status, run.seed,
               run.final.get("step"), *[run.eval.get(k) for k in heads]]
        lines.append("| " + " | ".join(_md(v) for v in row[:len(header)]) + " |")
    return lines


def write_tables(runs: Sequence[RunRecord], out_dir: Path, title: str, plots: Sequence[Path] = (),
                 arms: Sequence[Arm] = (), paired: Sequence[tuple[Arm, str, Sequence[PairedComparison]]] = (),
                 notes: Sequence[str] = (), inputs: Sequence[tuple[str, Path]] = ()) -> tuple[Path, Path]:
    """report.md and its CSVs in ``out_dir``; ``inputs``: (label, dir) of each report input."""
    header, rows = columns(runs, out_dir)
    csv_path = out_dir / "report.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header + ["dir"])
        for run, row in zip(runs, rows):
            writer.writerow(["" if v is None else v for v in row] + [str(run.dir)])
    lines = [f"# Report: {title}", ""]
    lines += [f"- {label}: `{path}`" for label, path in inputs] + ([""] if inputs else [])
    lines += [f"{len(runs)} runs: " + ", ".join(f"{sum(r.status == s for r in runs)} {s}"
                                                for s in ("ok", "failed", "incomplete") if any(r.status == s for r in runs)),
              ""]
    csvs = ["[report.csv](report.csv) (per run)"]
    if arms:
        write_arms_csv(arms, out_dir / "report_arms.csv")
        csvs.append("[report_arms.csv](report_arms.csv) (per arm, every metric)")
        if any(is_breakdown(k) for a in arms for r in a.runs for k in r.eval):
            write_tasks_csv(arms, out_dir / "report_tasks.csv")
            csvs.append("[report_tasks.csv](report_tasks.csv) (per arm and task)")
        lines += ["## Headline: mean ± 95 % CI half-width over seeds (t-based), n = seeds, best first", ""]
        lines += arm_lines(arms) + [""]
        if any(m.endswith(TIE_SHARE) for m in headline_metrics(arms)):
            lines += ["<benchmark> ties % = judgments with neither answer better (they count as half a win in the win rate); "
                      "a large share means the judge cannot tell the answers apart.", ""]
        lines += identical_seeds_note(arms)
    lines += list(notes)
    for table in paired:
        lines += paired_lines(*table) + [""]
    lines += ["## Runs", "", f"final/* = mean of the metrics.jsonl rows in the last {FINAL_WINDOW_FRACTION:.0%} of "
              "logged steps; rows at step <= 1 (before the first update) never count. All columns: "
              + ", ".join(csvs) + ".", ""]
    lines += run_lines(runs, out_dir)
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
    md_path = out_dir / layout.REPORT
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path
