"""Sweep jobs that survive: a failed job leaves FAILED (its traceback) in its run dir and returns
NaN, so the basic launcher goes on with the next point and Optuna records a failed trial."""
from __future__ import annotations

import math
import traceback
from pathlib import Path

FAILED = "FAILED"


def write_failure(run_dir: Path, exc: BaseException) -> Path:
    """FAILED marker: a one-line summary (read by the sweep summary and the report), then the traceback."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FAILED
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())
    path.write_text(summary + "\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def final_metric(run_dir: Path, key: str) -> float:
    """The last logged value of ``key`` in metrics.jsonl (NaN if absent): a job's sweep objective."""
    import json

    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return math.nan
    for line in reversed(path.read_text().splitlines()):
        row = json.loads(line)
        if key in row:
            return float(row[key])
    return math.nan
