"""Sweep plots (matplotlib, Agg: no display needed). PNG files next to report.md. Every point is an
arm (runs pooled over seeds): its mean, with a 95 % CI error bar (none when n = 1).

* ``arms.png``: each benchmark's headline score (or, before any evaluation, the final reward
  margin) per arm.
* ``eval_vs_tau.png`` (``margins_vs_tau.png`` before any evaluation), when the sweep sets tau:
  the score against tau, one line per arm family; an arm that cannot read tau (DPO) is a flat
  reference line with its CI band, not a curve.
* ``curves.png``: rewards/margins, logps/chosen and logps/rejected over steps, mean per arm with
  a 95 % CI band.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

from .arms import Arm
from .stats import mean_ci

CURVE_KEYS = ("rewards/margins", "logps/chosen", "logps/rejected")
MARGIN_METRIC = "final/rewards/margins"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    # 20 distinct colours (tab20's ten dark ones, then the ten light): the study has 11 arms, and the
    # default 10-colour cycle drew two of them in the same colour
    colors = plt.get_cmap("tab20").colors
    plt.rcParams["axes.prop_cycle"] = cycler(color=[*colors[::2], *colors[1::2]])
    return plt


def _err(half_width: float) -> float:
    return 0.0 if math.isnan(half_width) else half_width


def headline_keys(arms: Sequence[Arm]) -> dict[str, str]:
    """benchmark -> "eval/<bench>/<metric>" of its headline, over every counted run."""
    out: dict[str, str] = {}
    for arm in arms:
        for run in arm.runs:
            for bench, key in run.headline.items():
                out.setdefault(bench, f"eval/{key}")
    return dict(sorted(out.items()))


def _panels(arms: Sequence[Arm]) -> list[tuple[str, str]]:
    heads = headline_keys(arms)
    return [(f"{bench}: {key}", key) for bench, key in heads.items()] or [("final rewards/margins", MARGIN_METRIC)]


def plot_arms(arms: Sequence[Arm], out_dir: Path) -> Path:
    plt = pyplot()
    panels = _panels(arms)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 0.9 + 0.35 * max(3, len(arms))),
                             squeeze=False)
    for ax, (title, metric) in zip(axes[0], panels):
        for i, arm in enumerate(arms):
            e = arm.estimate(metric)
            if e.n:
                ax.errorbar([e.mean], [i], xerr=[_err(e.half_width)], fmt="o", capsize=3)
        ax.set_yticks(range(len(arms)), [f"{a.label} (n={len(a.runs)})" for a in arms], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{title}: mean ± 95 % CI", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_figure(plt, fig, out_dir / "arms.png")


def _family(arm: Arm) -> str:
    return ",".join(f"{k}={v}" for k, v in arm.params.items() if k != "tau") or "default"


def _against_tau(ax, arms: Sequence[Arm], metric: str) -> None:
    lines: dict[str, list] = defaultdict(list)
    flat: list[Arm] = []
    for arm in arms:
        e = arm.estimate(metric)
        if not e.n:
            continue
        if not arm.tau_used:
            flat.append(arm)
        elif "tau" in arm.params:
            lines[_family(arm)].append((float(arm.params["tau"]), e))
    for family, points in lines.items():
        points.sort(key=lambda p: p[0])
        ax.errorbar([t for t, _ in points], [e.mean for _, e in points], yerr=[_err(e.half_width) for _, e in points],
                    marker="o", capsize=3, label=family)
    for arm in flat:  # tau cannot change these runs: a reference level, not a curve
        e = arm.estimate(metric)
        line = ax.axhline(e.mean, linestyle="--", linewidth=1, label=f"{arm.label}, n={e.n}")
        if e.n >= 2:
            ax.axhspan(e.low, e.high, color=line.get_color(), alpha=0.12)
    ax.set_xlabel("tau")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def plot_against_tau(arms: Sequence[Arm], out_dir: Path) -> Path:
    plt = pyplot()
    panels = _panels(arms)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (title, metric) in zip(axes[0], panels):
        _against_tau(ax, arms, metric)
        ax.set_title(f"{title} vs tau (mean ± 95 % CI)", fontsize=9)
    fig.tight_layout()
    path = out_dir / ("eval_vs_tau.png" if headline_keys(arms) else "margins_vs_tau.png")
    return save_figure(plt, fig, path)


def mean_curve(rows_per_run: Sequence[Sequence[dict]], key: str, x: str = "step") -> list[tuple[float, float, float]]:
    """[(x, mean, CI half-width)] of ``key`` over runs, at every x some run logged it."""
    at: dict[float, list[float]] = defaultdict(list)
    for rows in rows_per_run:
        for row in rows:
            if key in row and x in row and row[key] is not None:
                at[float(row[x])].append(float(row[key]))
    out = []
    for step in sorted(at):
        e = mean_ci(at[step])
        out.append((step, e.mean, _err(e.half_width)))
    return out


def plot_mean_curves(ax, arms: Sequence[Arm], key: str, rows_of: Callable) -> None:
    for arm in arms:
        pts = mean_curve([rows_of(r) for r in arm.runs], key)
        if not pts:
            continue
        xs, ys, hw = zip(*pts)
        (line,) = ax.plot(xs, ys, marker="." if len(pts) < 30 else None, label=f"{arm.label} (n={len(arm.runs)})")
        ax.fill_between(xs, [y - h for y, h in zip(ys, hw)], [y + h for y, h in zip(ys, hw)], color=line.get_color(),
                        alpha=0.15)


def legend_below(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=7)
        fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 3), 1, 1))
    else:
        fig.tight_layout()


def step_panel(ax, arms: Sequence[Arm], key: str, rows_of: Callable, title: str) -> None:
    """One panel of ``key`` against the training step: each arm's mean and CI band over seeds."""
    plot_mean_curves(ax, arms, key, rows_of)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)


def save_figure(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)  # a sweep report draws several figures: free each one
    return path


def plot_curves(arms: Sequence[Arm], out_dir: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(CURVE_KEYS), figsize=(5 * len(CURVE_KEYS), 4.2), squeeze=False)
    for ax, key in zip(axes[0], CURVE_KEYS):
        step_panel(ax, arms, key, lambda run: run.curves, f"{key} (mean ± 95 % CI over seeds)")
    legend_below(fig, axes[0][0])
    return save_figure(plt, fig, out_dir / "curves.png")
