"""Results: ``<eval dir>/results.json``, a one-line summary, and the training run's W&B summary.

W&B: training logs an offline run under ``<run dir>/wandb/offline-run-<time>-<id>``. Evaluation
resumes that run id (``resume="allow"``, offline) and writes ``eval/<benchmark>/<metric>`` into
its summary; ``wandb sync`` later merges it into the same online run. Anything that goes wrong
here is logged and recorded, never fatal: the numbers are already in results.json.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
from pathlib import Path
from typing import Any, Optional

from .store import write_json

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
RUN_DIR_RE = re.compile(r"^(?:offline-)?run-(?P<time>\d{8}_\d{6})-(?P<id>\w+)$")
HEADLINE = {"alpaca_eval": ("win_rate", "length_controlled_winrate", "standard_error"),
            "mt_bench": ("score", "turn_1", "turn_2", "n_unparseable"),
            "sandbox": ("win_rate", "standard_error", "mean_gold_score", "reference_mean_gold_score")}


def build(benchmark: str, bench_result: dict, checkpoint: dict, limit: Optional[int]) -> dict:
    return {"benchmark": benchmark, "schema_version": SCHEMA_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": checkpoint, "limit": limit, **bench_result}


def write(out_dir: Path, results: dict) -> Path:
    path = out_dir / "results.json"
    write_json(path, results)
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def summary_line(results: dict) -> str:
    """E.g. ``mt_bench run-step100: score=6.125 turn_1=... (n=80, judge gpt-4)``."""
    bench, m = results["benchmark"], results["metrics"]
    parts = " ".join(f"{k}={_fmt(m.get(k))}" for k in HEADLINE.get(bench, ()) if k in m)
    judge = results.get("judge") or {}
    return (f"{bench} {results.get('model_name')}: {parts} "
            f"(n={results.get('n_items')}, judge {judge.get('model', judge.get('kind', '-'))})")


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


def find_wandb_run(run_dir: Optional[Path]) -> Optional[tuple[str, Path]]:
    """(run id, the run's folder) of the newest W&B run under ``<run dir>/wandb``."""
    if run_dir is None or not (run_dir / "wandb").is_dir():
        return None
    runs = sorted((p for p in (run_dir / "wandb").iterdir() if p.is_dir() and RUN_DIR_RE.match(p.name)),
                  key=lambda p: RUN_DIR_RE.match(p.name).group("time"))
    if not runs:
        return None
    return RUN_DIR_RE.match(runs[-1].name).group("id"), runs[-1]


def log_to_wandb(run_dir: Optional[Path], benchmark: str, metrics: dict) -> str:
    """Add the numbers to the training run's W&B summary; returns what happened, in words."""
    found = find_wandb_run(run_dir)
    if found is None:
        return f"skipped: no W&B run under {run_dir}/wandb" if run_dir else "skipped: no training run dir"
    run_id, _ = found
    try:
        import wandb

        run = wandb.init(dir=str(run_dir), id=run_id, resume="allow", mode="offline",
                         settings=wandb.Settings(silent=True, console="off"))
        run.summary.update(flat_metrics(benchmark, metrics))
        run.finish()
        # wandb 0.31 offline: records reach the .wandb file only when the service shuts down;
        # without this an early process exit (or a reader right after finish) can find the
        # segment empty (seen here in ~40% of runs).
        wandb.teardown()
    except Exception as err:  # W&B is a convenience; results.json already holds the numbers
        log.warning("W&B summary not updated (%s: %s)", type(err).__name__, err)
        return f"failed: {type(err).__name__}: {err}"
    return f"added to W&B run {run_id} (offline; `wandb sync` {run_dir / 'wandb'} to upload)"
