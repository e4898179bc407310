"""Non-finite guard: a NaN or inf loss or gradient norm never trains on silently.

``trainer.on_nonfinite=stop`` (default): the run stops at that step, before the optimizer applies
it (before a save too), with :class:`NonFiniteStop` naming the step, the dataset rows (``index``)
of the batch and the last good checkpoint. ``skip``: the batch's gradients are dropped (the
optimizer skips parameters without a gradient, so neither weights nor Adam moments move), the step
still counts, and the skipped steps are counted in the logs (``nonfinite/skipped``) and in
``<run>/nonfinite.json``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..config import layout

ON_NONFINITE = ("stop", "skip")
# The documented exit code of a run stopped by the guard (2 is bad input, 128+N a signal).
EXIT_NONFINITE = 3


class NonFiniteStop(Exception):
    def __init__(self, step: int, what: str, rows: list[int], last_checkpoint: str | None):
        self.step, self.what, self.rows, self.last_checkpoint = step, what, rows, last_checkpoint
        self.exit_code = EXIT_NONFINITE
        good = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint saved yet"
        super().__init__(f"non-finite {what} at step {step} (dataset rows index={_rows_text(rows)}); stopped, "
                         f"nothing non-finite saved; {good}. Lower trainer.learning_rate, check those "
                         "rows, or pass trainer.on_nonfinite=skip to skip such batches")


def _rows_text(rows: list[int], most: int = 32) -> str:
    shown = ",".join(str(r) for r in rows[:most])
    return shown + (f",... ({len(rows)} rows)" if len(rows) > most else "")


def torch_isfinite(loss):
    """A 0-d bool tensor on the loss's device (no host sync)."""
    import torch

    return torch.isfinite(loss.detach()).all()


def _flat(batches: list) -> list[int]:
    return [int(r) for rows in batches for r in (rows.tolist() if hasattr(rows, "tolist") else rows)]


def is_finite(value) -> bool:
    """A float, a 0-d tensor or None (no value: nothing to check)."""
    if value is None:
        return True
    if hasattr(value, "item"):
        value = value.detach().float().item()
    return math.isfinite(float(value))


class NonFiniteGuard:
    """What the current optimizer step has seen (its micro-batches) and what was skipped so far.

    Without a host sync per micro-batch: the rows stay tensors and the losses' finiteness a
    device flag until ``problem`` (once per optimizer step) or ``step_rows`` reads them."""

    def __init__(self, mode: str = "stop"):
        self.mode = mode
        self.skipped: list[dict] = []
        self._rows: list = []  # per micro-batch: a list of ints or a 1-d tensor
        self._previous: list = []  # the last finished step's
        self._loss_finite = True  # a bool, or a 0-d bool tensor on the loss's device

    @property
    def step_rows(self) -> list[int]:
        return _flat(self._rows)

    @property
    def previous_rows(self) -> list[int]:
        return _flat(self._previous)

    def see_micro_batch(self, rows, loss) -> None:
        self._rows.append(rows)
        if hasattr(loss, "detach"):
            self._loss_finite = torch_isfinite(loss) & self._loss_finite
        else:
            self._loss_finite = self._loss_finite and is_finite(loss)

    def problem(self, grad_norm) -> str | None:
        """What is non-finite in the step just computed (None: nothing)."""
        if not bool(self._loss_finite):
            return "loss"
        if not is_finite(grad_norm):
            return "gradient norm"
        return None

    def record_skip(self, step: int, what: str) -> None:
        self.skipped.append({"step": step, "what": what, "rows": list(self.step_rows)})

    def next_step(self) -> None:
        self._previous, self._rows, self._loss_finite = self._rows, [], True

    def write_summary(self, run_dir: Path) -> None:
        """``<run>/nonfinite.json``: how many optimizer steps were skipped, which, on which rows."""
        (run_dir / layout.NONFINITE).write_text(json.dumps(
            {"on_nonfinite": self.mode, "skipped_steps": len(self.skipped), "skipped": self.skipped}, indent=2))
