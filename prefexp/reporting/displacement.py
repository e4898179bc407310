"""Likelihood displacement: per-route log-prob trajectories from each run's ``probes.jsonl``.

``prefexp.engine.probes`` logs, on fixed probe pairs, the mean summed log-prob of chosen and
rejected per probe set (difficult: rating margin < tau; easy). Displacement is the change from the
run's own step-0 value, ``logp(step) - logp(0)``: a falling chosen log-prob on difficult pairs
while the margin grows is the displacement MixDPO is about; a fall on easy pairs as well is
general drift. ``displacement.png``: one row per probe set, columns chosen / rejected / margin,
mean over seeds per arm with a 95 % CI band; the learning rate in effect once, at the end of the
first row (the same schedule for every probe set).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from .arms import Arm
from .collect import RunRecord
from .plots import legend_below, pyplot, save_figure, step_panel

SIDES = ("chosen", "rejected", "margin")


def probe_sets_of(runs: Sequence[RunRecord]) -> list[str]:
    names: list[str] = []
    for run in runs:
        for row in run.probes:
            for key in row:
                if key.startswith("probe/") and key.split("/")[1] not in names:
                    names.append(key.split("/")[1])
    return names


def displacement_rows(run: RunRecord) -> list[dict]:
    """``probes.jsonl`` rows as changes from the step-0 row: ``<set>/<side>`` = value - value at step 0.
    Empty when the run has no step-0 row (nothing to measure the change from)."""
    start: Optional[dict] = next((r for r in run.probes if r.get("step") == 0), None)
    if start is None:
        return []
    out = []
    for row in run.probes:
        changed = {"step": row["step"]}
        for key, value in row.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "probe" and parts[2] in SIDES and key in start and value is not None:
                changed[f"{parts[1]}/{parts[2]}"] = value - start[key]
        if row.get("learning_rate") is not None:
            changed["learning_rate"] = row["learning_rate"]
        out.append(changed)
    return out


def displacement_figure(arms: Sequence[Arm]):
    """The figure of ``displacement.png``; None when no run has probes."""
    sets = probe_sets_of([r for a in arms for r in a.runs])
    if not sets:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(sets), len(SIDES) + 1, figsize=(4.6 * (len(SIDES) + 1), 3.6 * len(sets) + 1.0),
                             squeeze=False)
    for row_axes, name in zip(axes, sets):
        for ax, side in zip(row_axes, SIDES):
            step_panel(ax, arms, f"{name}/{side}", displacement_rows, f"{name}: change in {side} log-prob",
                       ylabel=("log-prob margin (chosen - rejected)" if side == "margin" else f"{side} log-prob")
                       + " - its step-0 value (nats)")
            ax.axhline(0.0, color="grey", linewidth=0.8)
    step_panel(axes[0][-1], arms, "learning_rate", displacement_rows, "learning rate in effect")
    for row_axes in axes[1:]:
        row_axes[-1].remove()  # the schedule is the same for every probe set: drawn once
    legend_below(fig, axes[0][0])
    return fig


def plot_displacement(arms: Sequence[Arm], out_dir: Path) -> Optional[Path]:
    """``displacement.png`` (None when no run has probes)."""
    fig = displacement_figure(arms)
    return None if fig is None else save_figure(pyplot(), fig, out_dir / "displacement.png")
