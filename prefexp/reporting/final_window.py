"""What "final" means for training metrics: the mean over the last logged window, never a row
logged before the first update.

metrics.jsonl holds one row per logging step; a row at step s averages the batches trained since
the previous row. The row at step 1 (``logging_first_step``) is computed on the initial weights,
before any optimizer step, so it says nothing about training: it never counts. "Final" is the
mean of the rows whose step lies in the last ``FINAL_WINDOW_FRACTION`` of the run's logged steps
(``step > (1 - fraction) * last_step``), at least the last row after step 1. A run with no row
after step 1 (e.g. ``trainer.max_steps=3`` with ``trainer.logging_steps=5`` and no last-step log)
has no final metrics: empty, not the initial model's numbers.

Under a curriculum the last window holds the last pairs in training order (the hardest for
easy_to_hard), so compare methods on evaluation results and probes (``probes.jsonl``), not only on
final training metrics.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ..config import layout

FINAL_WINDOW_FRACTION = 0.1
FIRST_UPDATED_STEP = 2  # rows at step <= 1 were computed before the first optimizer step


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def window_rows(rows: Sequence[dict], fraction: float = FINAL_WINDOW_FRACTION) -> list[dict]:
    """The metrics.jsonl rows that make up "final" (see the module docstring)."""
    updated = [r for r in rows if _is_number(r.get("step")) and r["step"] >= FIRST_UPDATED_STEP]
    if not updated:
        return []
    last = max(r["step"] for r in updated)
    window = [r for r in updated if r["step"] > (1.0 - fraction) * last]
    return window or [max(updated, key=lambda r: r["step"])]


def final_metrics(rows: Sequence[dict], fraction: float = FINAL_WINDOW_FRACTION) -> dict[str, float]:
    """key -> mean over the window rows that hold it; ``step`` = the last step, ``final_rows`` = rows used."""
    window = window_rows(rows, fraction)
    if not window:
        return {}
    keys: list[str] = []
    for row in window:
        keys += [k for k, v in row.items() if k != "step" and k not in keys and _is_number(v)]
    out: dict[str, float] = {"step": max(r["step"] for r in window), "final_rows": len(window)}
    for key in keys:
        values = [float(r[key]) for r in window if _is_number(r.get(key))]
        out[key] = sum(values) / len(values)
    return out


def final_value(run_dir: Path, key: str) -> float:
    """A job's sweep objective: ``key`` under the same final rule (NaN if the run has none)."""
    path = Path(run_dir) / layout.METRICS
    if not path.exists():
        return math.nan
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return float(final_metrics(rows).get(key, math.nan))
