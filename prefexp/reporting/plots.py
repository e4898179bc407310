"""Sweep plots (matplotlib, Agg: no display needed). PNG files next to report.md. Every point is an
arm (runs pooled over seeds): its mean, with a 95 % CI error bar (none when n = 1).

* ``arms.png``: each benchmark's headline score (or, before any evaluation, the final reward
  margin) per arm.
* ``eval_vs_tau.png`` (``margins_vs_tau.png`` before any evaluation), when the sweep sets tau:
  the score against tau, one line per arm family; an arm that cannot read tau (DPO) is a flat
  reference line with its CI band, not a curve.
* ``curves.png``: rewards/margins, logps/chosen and logps/rejected over steps, mean per arm with
  a 95 % CI band.

Every axis is labelled with its unit (``axis_label``); a win rate gets a dashed 50 % line (the
reference's level: no better, no worse). Each figure is built by a ``*_figure`` function (tests
read its axes) and saved by the ``plot_*`` one.
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


# metric name (its last part) -> axis label with unit
_UNITS = {"win_rate": "win rate vs reference (%)", "length_controlled_winrate": "length-controlled win rate (%)",
          "mean_gold_score": "mean gold score (gold-scorer points)", "score": "MT-Bench score (1-10)",
          "rewards/margins": "reward margin (nats, beta x log-ratio)",
          "rewards/accuracies": "reward accuracy (fraction of pairs)",
          "rewards/chosen": "chosen reward (nats, beta x log-ratio)",
          "rewards/rejected": "rejected reward (nats, beta x log-ratio)",
          "logps/chosen": "chosen log-prob (nats, summed over the response)",
          "logps/rejected": "rejected log-prob (nats, summed over the response)", "loss": "loss (nats)",
          "learning_rate": "learning rate", "ties_percent": "ties (% of judgments)"}
WIN_RATES = ("win_rate", "length_controlled_winrate")


def axis_label(metric: str) -> str:
    """``eval/sandbox/win_rate`` -> "sandbox: win rate vs reference (%)"; ``final/loss`` -> "loss (nats)"."""
    parts = metric.split("/")
    if parts[0] == "eval" and len(parts) >= 3:
        return f"{parts[1]}: {_UNITS.get(parts[-1], parts[-1])}"
    key = "/".join(parts[1:]) if parts[0] in ("final", "lr") else metric
    return _UNITS.get(key, key)


def is_win_rate(metric: str) -> bool:
    return metric.split("/")[-1] in WIN_RATES


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


def arms_figure(arms: Sequence[Arm]):
    plt = pyplot()
    panels = _panels(arms)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 1.2 + 0.4 * max(3, len(arms))),
                             squeeze=False)
    for ax, (title, metric) in zip(axes[0], panels):
        for i, arm in enumerate(arms):
            e = arm.estimate(metric)
            if e.n:
                ax.errorbar([e.mean], [i], xerr=[_err(e.half_width)], fmt="o", capsize=3)
        if is_win_rate(metric):
            ax.axvline(50.0, color="grey", linestyle="--", linewidth=1)  # as good as the reference
        ax.set_yticks(range(len(arms)), [f"{a.label} (n={len(a.runs)})" for a in arms], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{title}: mean ± 95 % CI over seeds", fontsize=10)
        ax.set_xlabel(axis_label(metric))
        ax.set_ylabel("arm (n = seeds)")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_arms(arms: Sequence[Arm], out_dir: Path) -> Path:
    return save_figure(pyplot(), arms_figure(arms), out_dir / "arms.png")


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
    if is_win_rate(metric):
        ax.axhline(50.0, color="grey", linestyle="--", linewidth=1)  # as good as the reference
    ax.set_xlabel("tau (router threshold on the difficulty margin)")
    ax.set_ylabel(axis_label(metric))
    ax.grid(alpha=0.3)


def against_tau_figure(arms: Sequence[Arm]):
    plt = pyplot()
    panels = _panels(arms)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.6), squeeze=False)
    for ax, (title, metric) in zip(axes[0], panels):
        _against_tau(ax, arms, metric)
        ax.set_title(f"{title} vs tau (mean ± 95 % CI)", fontsize=10)
    legend_below(fig, axes[0][0])
    return fig


def plot_against_tau(arms: Sequence[Arm], out_dir: Path) -> Path:
    path = out_dir / ("eval_vs_tau.png" if headline_keys(arms) else "margins_vs_tau.png")
    return save_figure(pyplot(), against_tau_figure(arms), path)


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
        rows = (len(labels) + 2) // 3
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=9, frameon=False)
        fig.tight_layout(rect=(0, min(0.5, 0.05 + 0.06 * rows), 1, 1))
    else:
        fig.tight_layout()


def step_panel(ax, arms: Sequence[Arm], key: str, rows_of: Callable, title: str, ylabel: str | None = None) -> None:
    """One panel of ``key`` against the training step: each arm's mean and CI band over seeds."""
    plot_mean_curves(ax, arms, key, rows_of)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("training step (optimizer updates)")
    ax.set_ylabel(ylabel or axis_label(key))
    ax.grid(alpha=0.3)


def save_figure(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)  # a sweep report draws several figures: free each one
    return path


def curves_figure(arms: Sequence[Arm]):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(CURVE_KEYS), figsize=(5.5 * len(CURVE_KEYS), 4.8), squeeze=False)
    for ax, key in zip(axes[0], CURVE_KEYS):
        step_panel(ax, arms, key, lambda run: run.curves, f"{key} (mean ± 95 % CI over seeds)")
    legend_below(fig, axes[0][0])
    return fig


def plot_curves(arms: Sequence[Arm], out_dir: Path) -> Path:
    return save_figure(pyplot(), curves_figure(arms), out_dir / "curves.png")
