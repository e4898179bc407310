"""The routing plan: every training example's margin, route and position in training order.

Data flows one way: pairs -> margins (metric) -> selected mask and action (router) -> order
(curriculum). The plan is written to ``routing_plan.jsonl`` before any model loads, so a sweep
can be checked before it spends compute, and the trainer reads examples in exactly this order.
Discarded pairs are not in the training order; ``routing_summary.json`` counts them.
"""
from __future__ import annotations

import json
import math
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
    stage: int = 0  # curriculum.stages: which stage trains this entry (prefexp.difficulty.stages)


def rating_margins(pairs: Sequence[PreferencePair]) -> list[Optional[float]]:
    """MixDPO's difficulty: score_chosen - score_rejected (None where a pair has no scores)."""
    return [
        None if p.score_chosen is None or p.score_rejected is None else p.score_chosen - p.score_rejected
        for p in pairs
    ]


def order_indices(margins: Sequence[Optional[float]], order: str, seed: int) -> list[int]:
    """Positions in training order, fixed at plan time so the plan file is the training order.

    easy_to_hard: descending margin (the MixDPO paper); hard_to_easy: ascending; none: a seeded
    shuffle. Pairs with equal margins (ratings are coarse: most margins are ties) come in a seeded
    random order: the order within a tie is arbitrary, and a fixed row order would make every seed
    of a curriculum run the same run (no seed variance to measure) and tie the order to however
    the file happens to be sorted.
    """
    positions = list(range(len(margins)))
    random.Random(seed).shuffle(positions)
    if order == "none":
        return positions
    if any(m is None for m in margins):
        raise ValueError(f"curriculum={order} needs a margin for every pair")
    sign = -1.0 if order == "easy_to_hard" else 1.0
    return sorted(positions, key=lambda i: sign * margins[i])  # type: ignore[operator]  # stable: ties keep the shuffle


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
            if e.stage:
                row["stage"] = e.stage
            f.write(json.dumps(row) + "\n")


# Margin buckets of the disagreement table: half-point rating steps at the small end, where
# MixDPO's tau lives; a non-rating metric's negative margins fall in the first bucket.
DISAGREEMENT_EDGES = (-math.inf, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, math.inf)


def gold_disagreement(entries: Sequence[PlanEntry], pairs: Sequence[PreferencePair],
                      edges: Sequence[float] = DISAGREEMENT_EDGES) -> Optional[list[dict]]:
    """Per margin bucket [low, high): pairs, how many the rated order gets wrong against the gold
    order (``gold_chosen < gold_rejected``), gold ties, and the share wrong.

    Needs ``pair.extra["gold_chosen"/"gold_rejected"]`` (the sandbox has them; real data has no
    gold); None when no pair has them. Pairs without a margin are left out.
    """
    by_index = {p.index: p for p in pairs if "gold_chosen" in p.extra and "gold_rejected" in p.extra}
    if not by_index:
        return None
    out = [{"low": lo, "high": hi, "pairs": 0, "disagree": 0, "gold_ties": 0} for lo, hi in zip(edges, edges[1:])]
    for e in entries:
        pair = by_index.get(e.index)
        if pair is None or e.margin is None:
            continue
        b = next(b for b in out if b["low"] <= e.margin < b["high"])
        b["pairs"] += 1
        b["disagree"] += pair.extra["gold_chosen"] < pair.extra["gold_rejected"]
        b["gold_ties"] += pair.extra["gold_chosen"] == pair.extra["gold_rejected"]
    for b in out:
        b["share"] = b["disagree"] / b["pairs"] if b["pairs"] else None
        # JSON has no infinity: open ends are written as null
        b["low"], b["high"] = (None if math.isinf(x) else x for x in (b["low"], b["high"]))
    return out


def gold_composition(entries: Sequence[PlanEntry], labels: dict, kinds: Sequence[str],
                     edges: Sequence[float] = DISAGREEMENT_EDGES) -> dict:
    """The pairs' gold composition per margin bucket [low, high) and per route.

    ``labels``: pair index -> an object with ``kind`` (one of ``kinds``) and ``chosen_exact``
    (prefexp.sandbox.pair_labels). Each row has ``pairs``, a count and a ``share_<kind>`` per kind,
    and ``chosen_exact`` / ``share_chosen_exact``; empty rows have shares None. Entries without a
    label (or, for the buckets, without a margin) are left out.
    """
    def row(**key) -> dict:
        return {**key, "pairs": 0, **{k: 0 for k in kinds}, "chosen_exact": 0}

    buckets = [row(low=lo, high=hi) for lo, hi in zip(edges, edges[1:])]
    routes: dict[str, dict] = {}
    for e in entries:
        label = labels.get(e.index)
        if label is None:
            continue
        targets = [routes.setdefault(e.route, row(route=e.route))]
        if e.margin is not None:
            targets.append(next(b for b in buckets if b["low"] <= e.margin < b["high"]))
        for r in targets:
            r["pairs"] += 1
            r[label.kind] += 1
            r["chosen_exact"] += label.chosen_exact
    for r in [*buckets, *routes.values()]:
        for k in (*kinds, "chosen_exact"):
            r[f"share_{k}"] = r[k] / r["pairs"] if r["pairs"] else None
    for b in buckets:  # JSON has no infinity: open ends are written as null
        b["low"], b["high"] = (None if math.isinf(x) else x for x in (b["low"], b["high"]))
    return {"by_margin": buckets, "by_route": [routes[k] for k in sorted(routes)]}


def summarize(kept: Sequence[PlanEntry], discarded: Sequence[PlanEntry], router: RouterSpec, metric: str,
              order: str, pairs: Optional[Sequence[PreferencePair]] = None) -> dict:
    """The routing summary; with ``pairs`` that carry gold scores (the sandbox) it also has
    ``gold_disagreement``: the share of pairs whose rated order disagrees with the gold order, by
    margin bucket (:func:`gold_disagreement`), the premise MixDPO's router acts on."""
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
        "gold_disagreement": gold_disagreement([*kept, *discarded], pairs) if pairs is not None else None,
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
