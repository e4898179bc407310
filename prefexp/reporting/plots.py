"""Sweep plots (matplotlib, Agg: no display needed). PNG files next to report.md.

* ``eval_vs_tau.png``: per benchmark, its headline score against tau, one line per loss (when any
  run has eval results); otherwise ``margins_vs_tau.png``: final rewards/margins against tau.
* ``curves.png``: rewards/margins, logps/chosen and logps/rejected over steps, one line per run.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

from .collect import RunRecord

CURVE_KEYS = ("rewards/margins", "logps/chosen", "logps/rejected")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series_label(run: RunRecord, vary: Sequence[str]) -> str:
    parts = [f"{k}={run.params[k]}" for k in vary if k in run.params]
    return ",".join(parts) or run.dir.name


def _by_loss(runs: Sequence[RunRecord], value, vary: Sequence[str]) -> dict[str, list[tuple[float, float, str]]]:
    """loss -> sorted [(tau, value, the other varying params)], for runs with a tau and a value."""
    lines: dict[str, list] = defaultdict(list)
    for run in runs:
        v = value(run)
        if run.tau is not None and v is not None:
            rest = ",".join(f"{k}={run.params[k]}" for k in vary if k in run.params and k not in ("loss", "tau"))
            lines[run.loss or "?"].append((run.tau, v, rest))
    return {k: sorted(v) for k, v in lines.items()}


def _plot_against_tau(ax, runs: Sequence[RunRecord], value, ylabel: str, vary: Sequence[str]) -> None:
    for loss, points in _by_loss(runs, value, vary).items():
        groups: dict[str, list] = defaultdict(list)
        for tau, v, rest in points:  # one line per (loss, other varying params)
            groups[rest].append((tau, v))
        for rest, pts in groups.items():
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", label=f"{loss}" + (f" ({rest})" if rest else ""))
    ax.set_xlabel("tau")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def plot_against_tau(runs: Sequence[RunRecord], out_dir: Path, vary: Sequence[str]) -> Path:
    plt = _pyplot()
    benches = sorted({b for r in runs for b in r.headline})
    if benches:
        fig, axes = plt.subplots(1, len(benches), figsize=(5 * len(benches), 3.8), squeeze=False)
        for ax, bench in zip(axes[0], benches):
            key = next(r.headline[bench] for r in runs if bench in r.headline)
            _plot_against_tau(ax, runs, lambda r, k=key: r.eval.get(k), key, vary)
            ax.set_title(f"{bench}: eval score vs tau")
        path = out_dir / "eval_vs_tau.png"
    else:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        _plot_against_tau(ax, runs, lambda r: r.final.get("rewards/margins"), "final rewards/margins", vary)
        ax.set_title("final rewards/margins vs tau (no eval results yet)")
        path = out_dir / "margins_vs_tau.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(runs: Sequence[RunRecord], out_dir: Path, vary: Sequence[str]) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CURVE_KEYS), figsize=(5 * len(CURVE_KEYS), 3.8), squeeze=False)
    for ax, key in zip(axes[0], CURVE_KEYS):
        for run in runs:
            pts = [(row["step"], row[key]) for row in run.curves if key in row and "step" in row]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="." if len(pts) < 30 else None, label=_series_label(run, vary))
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7)
        fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 4), 1, 1))
    else:
        fig.tight_layout()
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
