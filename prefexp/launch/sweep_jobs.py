"""Sweep jobs that survive: a failed job leaves FAILED (its traceback) in its run dir and returns
NaN, so the basic launcher goes on with the next point and Optuna records a failed trial."""
from __future__ import annotations

import traceback
from pathlib import Path

from ..config import layout

FAILED = layout.FAILED


def write_failure(run_dir: Path, exc: BaseException) -> Path:
    """FAILED marker: a one-line summary (read by the sweep summary and the report), then the traceback."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FAILED
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())
    path.write_text(summary + "\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def final_metric(run_dir: Path, key: str) -> float:
    """The job's sweep objective: ``key`` over the last logged window (``reporting.final_window``:
    never a row before the first update); NaN if absent."""
    from ..reporting.final_window import final_value

    return final_value(run_dir, key)
