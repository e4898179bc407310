"""Results: ``<eval dir>/results.json``, a one-line summary, and the training run's W&B summary.

W&B: training records its run's identity in ``<run dir>/wandb_run.json`` (``prefexp.tracking.run``).
Evaluation of that checkpoint reopens the same run (project, entity, id; ``resume="allow"``,
offline, with the run's name, group and tags) and writes ``eval/<benchmark>/<metric>`` into its
summary and one history row at the final training step, with a Table of the generations;
``wandb sync`` later merges it into the same online run. Runs from before that file existed are found by their folder name
(id only). Anything that goes wrong here is logged and recorded, never fatal: the numbers are
already in results.json.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Optional

from ..benchmark_registry import BENCHMARKS
from ..config import layout
from .store import write_json

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2
RUN_DIR_RE = re.compile(r"^(?:offline-)?run-(?P<time>\d{8}_\d{6})-(?P<id>\w+)$")
# The summary line's metrics and printed decimals per benchmark (prefexp/benchmark_registry.py).
HEADLINE = {name: b.summary for name, b in BENCHMARKS.items()}
DECIMALS = {name: b.decimals for name, b in BENCHMARKS.items()}


def provenance() -> dict:
    """The prefexp version and commit that computed the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("prefexp")
    except PackageNotFoundError:
        ver = None
    return {"prefexp_version": ver, "prefexp_commit": _git_commit()}


def _git_commit() -> Optional[str]:
    # engine.artifacts.git_commit does the same, but importing it pulls in transformers and torch
    # (seconds), which scoring an annotations file otherwise never needs.
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def build(benchmark: str, bench_result: dict, source, limit: Optional[int]) -> dict:
    """results.json: what was evaluated (entry, chat template hash), how, by which code."""
    from .sources import template_hash

    evaluated = source.describe()
    if getattr(source, "kind", None) in ("checkpoint", "model"):
        evaluated["chat_template_sha256"] = template_hash(source.chat_template)
    return {"benchmark": benchmark, "schema_version": SCHEMA_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": evaluated, "limit": limit, **provenance(), **bench_result}


def write(out_dir: Path, results: dict) -> Path:
    path = out_dir / layout.RESULTS
    write_json(path, results)
    return path


def _fmt(value: Any, decimals: int) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{decimals}f}" if isinstance(value, float) else str(value)


def summary_line(results: dict) -> str:
    """E.g. ``mt_bench run-step100: score=6.125000 turn_1=... (n=80, judge gpt-4)``; a subset
    and failed judgments are said in the line itself."""
    bench, m = results["benchmark"], results["metrics"]
    dec = DECIMALS.get(bench, 3)
    parts = " ".join(f"{k}={_fmt(m.get(k), dec)}" for k in HEADLINE.get(bench, ()) if k in m)
    judge = results.get("judge") or {}
    subset = results.get("subset")
    n = f"n={results.get('n_items')}"
    if subset:
        n += f" of {subset['of']}: subset, not comparable to full-set numbers"
    if m.get("n_failed"):
        n += f"; {m['n_failed']} judgment(s) failed, left out"
    who = judge.get("model", judge.get("kind")) or (f"from {judge['annotations']}" if "annotations" in judge else "-")
    return f"{bench} {results.get('model_name')}: {parts} ({n}, judge {who})"


def protocol_lines(results: dict) -> list[str]:
    """One line per decoding protocol of a paired benchmark (the sandbox's ``metrics.<protocol>``):
    win rate over the reference with its 95 % CI, the tie share and wins / ties / losses, both mean
    gold scores and the paired difference with its 95 % CI. [] for benchmarks without protocols."""
    m = results.get("metrics") or {}
    names = list(((results.get("generation") or {}).get("protocols") or {}))
    lines = []
    for name in names:
        p = m.get(name)
        if not isinstance(p, dict) or "win_rate" not in p:
            continue
        head = " (headline)" if name == m.get("headline") else ""
        k = p.get("answers_per_prompt", 1)
        lines.append(
            f"  {name}{head}: win rate {p['win_rate']:.2f} % [{p['win_rate_ci95_low']:.2f}, "
            f"{p['win_rate_ci95_high']:.2f}], ties {100 * p['tie_share']:.1f} % "
            f"(W/T/L {p['n_wins']}/{p['n_ties']}/{p['n_losses']}); gold {p['mean_gold_score']:.3f} vs "
            f"reference {p['reference_mean_gold_score']:.3f}, paired diff {p['gold_difference']:+.3f} "
            f"[{p['gold_difference_ci95_low']:+.3f}, {p['gold_difference_ci95_high']:+.3f}] "
            f"({p['n_prompts']} prompts x {k})")
    return lines


def flat_metrics(benchmark: str, metrics: dict, prefix: Optional[str] = None) -> dict:
    """Finite numeric metrics as ``eval/<benchmark>/<name>`` (nested dicts joined with '/')."""
    prefix = prefix or f"eval/{benchmark}"
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat_metrics(benchmark, value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}/{key}"] = value
    return out


from ..tracking.run import WANDB_RUN_FILE  # written by start_wandb when training opens its run


def find_wandb_run(run_dir: Optional[Path]) -> Optional[tuple[str, Path]]:
    """(run id, the run's folder) of the newest W&B run under ``<run dir>/wandb``."""
    if run_dir is None or not (run_dir / layout.WANDB).is_dir():
        return None
    runs = sorted((p for p in (run_dir / layout.WANDB).iterdir() if p.is_dir() and RUN_DIR_RE.match(p.name)),
                  key=lambda p: RUN_DIR_RE.match(p.name).group("time"))
    if not runs:
        return None
    return RUN_DIR_RE.match(runs[-1].name).group("id"), runs[-1]


def training_wandb_run(run_dir: Optional[Path]) -> Optional[dict]:
    """{"id", "project", "entity"} of the training run: its record, else the newest run folder."""
    if run_dir is None:
        return None
    record = run_dir / WANDB_RUN_FILE
    if record.is_file():
        try:
            ident = json.loads(record.read_text())
            if ident.get("id"):
                return ident
        except json.JSONDecodeError:
            log.warning("%s is not JSON; looking for the run folder instead", record)
    found = find_wandb_run(run_dir)
    return {"id": found[0], "project": None, "entity": None} if found else None


def generations_table(out_dir: Path, res: dict) -> Optional[tuple[list[str], list[list]]]:
    """(columns, rows) of prompt / generation / per-prompt scores from the benchmark's saved
    answers (``files.model_outputs``) and per-prompt terms (``per_prompt``, sandbox; AlpacaEval's
    ``annotations.json`` preference); None when the benchmark saved no answers (given outputs)."""
    name = (res.get("files") or {}).get("model_outputs")
    if not name or not (Path(out_dir) / name).is_file():
        return None
    outputs = json.loads((Path(out_dir) / name).read_text())
    scores = {k: v for k, v in (res.get("per_prompt") or {}).items() if isinstance(v, dict)}
    annotations = (res.get("files") or {}).get("annotations")
    if annotations and (Path(out_dir) / annotations).is_file():
        scores["preference"] = {a.get("instruction"): a.get("preference")
                                for a in json.loads((Path(out_dir) / annotations).read_text())}
    rows = []
    for o in outputs:
        prompt = o.get("prompt", o.get("instruction"))
        rows.append([prompt, o.get("output"), *[by_prompt.get(prompt) for by_prompt in scores.values()]])
    return ["prompt", "generation", *scores], rows


def log_to_wandb(run_dir: Optional[Path], benchmark: str, res: dict, out_dir: Optional[Path] = None) -> str:
    """Add the results to the training run in W&B: its summary, one history point at the final
    training step (``train/global_step``; ``_step`` after the last one on disk, so the run's
    history stays strictly increasing) and a Table of the generations and their scores. Returns
    what happened, in words."""
    from ..tracking.files import last_steps, segments

    ident = training_wandb_run(run_dir)
    if ident is None:
        return f"skipped: no W&B run under {run_dir}" if run_dir else "skipped: no training run dir"
    metrics = flat_metrics(benchmark, res["metrics"])
    try:
        import wandb

        step, global_step = last_steps(segments(run_dir, ident["id"]))
        run = wandb.init(dir=str(run_dir), id=ident["id"], project=ident.get("project"),
                         entity=ident.get("entity"), name=ident.get("name"), group=ident.get("group"),
                         tags=ident.get("tags"), resume="allow", mode="offline",
                         settings=wandb.Settings(silent=True, console="off"))
        row = {**metrics, "train/global_step": global_step}
        table = generations_table(out_dir, res) if out_dir is not None else None
        if table is not None:
            row[f"eval/{benchmark}/generations"] = wandb.Table(columns=table[0], data=table[1])
        run.log(row, step=step + 1)
        run.summary.update(metrics)
        run.finish()
        # wandb 0.31 offline: records reach the .wandb file only when the service shuts down;
        # without this an early process exit (or a reader right after finish) can find the
        # segment empty (seen here in ~40% of runs).
        wandb.teardown()
    except Exception as err:  # W&B is a convenience; results.json already holds the numbers
        log.warning("W&B run not updated (%s: %s)", type(err).__name__, err)
        return f"failed: {type(err).__name__}: {err}"
    where = "/".join(x for x in (ident.get("entity"), ident.get("project")) if x) or "project unknown"
    return f"added to W&B run {ident['id']} ({where}; offline; `wandb sync` {run_dir / layout.WANDB} to upload)"
