"""Each rank's peak memory, for the reference pass and the training steps, in the log and metrics.

What is measured, per rank: the CPU resident set's high-water mark (Linux ``VmHWM``, which
``/proc/self/clear_refs`` can reset, so a window's peak is the peak *of that window*; elsewhere
``getrusage``'s lifetime maximum) and, on CUDA, ``torch.cuda.max_memory_allocated`` (reset the
same way). Figures are megabytes (2**20 bytes), gathered over ranks so that rank 0, the only
writer of ``train.log`` and ``metrics.jsonl``, has every rank's:

    memory/reference/peak_rss_mb/rank<r>     the reference pass (load + forwards), logged once
    memory/reference/peak_rss_above_start_mb/rank<r>   the same less the RSS when the pass began
    memory/peak_rss_mb/rank<r>               the training steps since the previous log line
    .../peak_cuda_allocated_mb/rank<r>       the same on CUDA

The reference pass runs before the Trainer exists; its figures wait in this module
(:func:`pending_figures`) until :class:`PeakMemoryCallback` adds them to the first training log.
"""
from __future__ import annotations

import logging
import resource
import sys
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger(__name__)

MB = float(1 << 20)
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_pending: dict[str, float] = {}  # figures measured before the Trainer exists (the reference pass)


def reset_peak() -> bool:
    """Start a new measuring window. Returns whether the CPU high-water mark could be reset
    (writing 5 to clear_refs resets VmHWM to the current RSS; Linux >= 4.0)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float:
    return _status_kb("VmRSS") / 1024.0 if _STATUS.exists() else 0.0


def peak_mb() -> dict[str, float]:
    """This rank's peaks since the last :func:`reset_peak`: ``peak_rss_mb`` (+ ``peak_cuda_allocated_mb``)."""
    import torch

    if _STATUS.exists():
        rss = _status_kb("VmHWM") / 1024.0
    else:  # macOS reports bytes, Linux kilobytes; lifetime maximum only
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (MB if sys.platform == "darwin" else 1024.0)
    out = {"peak_rss_mb": rss}
    if torch.cuda.is_available():
        out["peak_cuda_allocated_mb"] = torch.cuda.max_memory_allocated() / MB
    return out


def _status_kb(field: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return 0.0


def gather_peaks(prefix: str, start_rss_mb: float | None = None) -> dict[str, float]:
    """Every rank's :func:`peak_mb` as ``<prefix>/<figure>/rank<r>`` (collective: all ranks call it).
    With ``start_rss_mb`` (the RSS when the window began) also ``peak_rss_above_start_mb``: what the
    window itself added on top of the interpreter and the libraries already loaded."""
    import torch.distributed as dist

    mine = peak_mb()
    if start_rss_mb is not None:
        mine["peak_rss_above_start_mb"] = mine["peak_rss_mb"] - start_rss_mb
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        per_rank: list[dict] = [{}] * dist.get_world_size()
        dist.all_gather_object(per_rank, mine)
    else:
        per_rank = [mine]
    return {f"{prefix}/{name}/rank{r}": round(value, 1) for r, figures in enumerate(per_rank)
            for name, value in figures.items()}


@contextmanager
def measured(what: str, prefix: str):
    """Measure the block's peak memory on every rank; log it (rank 0) and keep it for metrics.jsonl.
    Collective on exit: every rank of a launch must run the block."""
    reset_peak()
    start = current_rss_mb()
    yield
    figures = gather_peaks(prefix, start)
    _pending.update(figures)
    log.info("peak memory during %s, MB: %s", what,
             ", ".join(f"{k.removeprefix(prefix + '/')}={v:.0f}" for k, v in figures.items()))


def pending_figures() -> dict[str, float]:
    """The figures measured since the last call (the reference pass), then forgotten."""
    figures = dict(_pending)
    _pending.clear()
    return figures


class PeakMemoryCallback(TrainerCallback):
    """Adds every rank's peak memory of each logging window (and, once, the reference pass's) to
    the Trainer's logs. Must come before ``MetricsFileCallback`` in the callback list."""

    def on_train_begin(self, args, state, control, **kwargs):
        reset_peak()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        logs.update(pending_figures())
        window = gather_peaks("memory")  # every rank logs at the same steps: the gather is matched
        reset_peak()  # the next log line reports its own window
        logs.update(window)
        if state.is_world_process_zero:
            log.debug("peak memory, steps up to %d: %s", state.global_step,  # the numbers: metrics.jsonl
                     ", ".join(f"{k.removeprefix('memory/')}={v:.0f}" for k, v in window.items()))
        # W&B: engine.wandb_callback runs after this callback and logs these keys in the step's row
