"""The routing plan: every training example's margin, route and position in training order.

Data flows one way: pairs -> margins (metric) -> selected mask and action (router) -> order
(curriculum). The plan is written to ``routing_plan.jsonl`` before any model loads, so a sweep
can be checked before it spends compute, and the trainer reads examples in exactly this order.
Discarded pairs are not in the training order; ``routing_summary.json`` counts them.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..data.records import PreferencePair
from .router import RouterSpec, action_for, select, weight_for


@dataclass
class PlanEntry:
    index: int  # original row of the source data
    margin: Optional[float]
    route: str  # "sft" (routed by the loss), "discard", or the preference branch name
    difficult: bool  # passed to routing losses: True sends the pair to their difficult branch
    weight: float = 1.0
    # the loss's own margin when it is defined on another metric than the router's (MADPO: reward model)
    loss_margin: Optional[float] = None


def rating_margins(pairs: Sequence[PreferencePair]) -> list[Optional[float]]:
    """MixDPO's difficulty: score_chosen - score_rejected (None where a pair has no scores)."""
    return [
        None if p.score_chosen is None or p.score_rejected is None else p.score_chosen - p.score_rejected
        for p in pairs
    ]


def order_indices(margins: Sequence[Optional[float]], order: str, seed: int) -> list[int]:
    """Positions in training order. Sorts are stable on the original position (ties keep row order).

    easy_to_hard: descending margin (the MixDPO paper); hard_to_easy: ascending; none: a seeded
    shuffle, fixed at plan time so the plan file is the training order.
    """
    positions = list(range(len(margins)))
    if order == "none":
        random.Random(seed).shuffle(positions)
        return positions
    if any(m is None for m in margins):
        raise ValueError(f"curriculum={order} needs a margin for every pair")
    sign = -1.0 if order == "easy_to_hard" else 1.0
    return sorted(positions, key=lambda i: (sign * margins[i], i))  # type: ignore[operator]


def make_plan(pairs: Sequence[PreferencePair], margins: Sequence[Optional[float]], router: RouterSpec,
              order: str, seed: int, branch_name: str, routes_pairs: bool) -> tuple[list[PlanEntry], list[PlanEntry]]:
    """(training entries in order, discarded entries). ``route`` for a routed pair is "sft"."""
    selected = select(margins, router)
    kept, discarded = [], []
    for position in order_indices(margins, order, seed):
        pair, margin, sel = pairs[position], margins[position], selected[position]
        action = action_for(sel, router)
        routed = action == "route" and routes_pairs
        route = "discard" if action == "discard" else ("sft" if routed else branch_name)
        entry = PlanEntry(pair.index, margin, route, routed, weight_for(sel, router))
        (discarded if action == "discard" else kept).append(entry)
    return kept, discarded


def write_plan(entries: Sequence[PlanEntry], path: Path, metric: str) -> None:
    with path.open("w") as f:
        for e in entries:
            row = {"index": e.index, "margin": e.margin, "route": e.route, "metric": metric}
            if e.weight != 1.0:
                row["weight"] = e.weight
            if e.loss_margin is not None:
                row["loss_margin"] = e.loss_margin
            f.write(json.dumps(row) + "\n")


def summarize(kept: Sequence[PlanEntry], discarded: Sequence[PlanEntry], router: RouterSpec, metric: str,
              order: str) -> dict:
    margins = sorted(e.margin for e in [*kept, *discarded] if e.margin is not None)

    def quantile(q: float) -> Optional[float]:
        return margins[min(len(margins) - 1, int(q * len(margins)))] if margins else None

    routes = Counter(e.route for e in kept) + Counter(e.route for e in discarded)
    return {
        "pairs": len(kept) + len(discarded),
        "trained": len(kept),
        "routes": dict(routes),
        "tau": router.tau,
        "router": router.name,
        "metric": metric,
        "curriculum": order,
        "band": [router.band_low, router.band_high] if router.name == "band" else None,
        "margin_quantiles": {str(q): quantile(q) for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)},
    }


def plot_histogram(kept: Sequence[PlanEntry], discarded: Sequence[PlanEntry], summary: dict, path: Path,
                   cut: Optional[float]) -> None:
    """PNG histogram of margins with the cut (tau or the band edges) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    margins = [e.margin for e in [*kept, *discarded] if e.margin is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(margins, bins=40, color="#4c72b0")
    cuts = [cut] if cut is not None else []
    if summary["band"] is not None:
        cuts = summary["band"]
    for x in cuts:
        ax.axvline(x, color="#c44e52", linestyle="--", label=f"cut {x:g}")
    ax.set_xlabel(f"margin ({summary['metric']})")
    ax.set_ylabel("pairs")
    ax.set_title(f"router={summary['router']} tau={summary['tau']:g}: {summary['routes']}", fontsize=8)
    if cuts:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
