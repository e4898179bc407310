"""The routing plan: every training example's margin, route and position in training order.

Data flows one way: pairs -> margins (metric) -> difficult mask (router) -> order (curriculum).
The plan is written to ``routing_plan.jsonl`` before any model loads, so a sweep can be checked
before it spends compute, and the trainer reads examples in exactly this order.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..data.records import PreferencePair


@dataclass
class PlanEntry:
    index: int  # original row of the source data
    margin: Optional[float]
    route: str  # "sft" (difficult, for routing losses) or the preference branch name
    difficult: bool


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


def make_plan(pairs: Sequence[PreferencePair], margins: Sequence[Optional[float]], router: str, tau: float,
              order: str, seed: int, branch_name: str, routes_pairs: bool) -> list[PlanEntry]:
    """Mark difficult pairs (``margin < tau``, strict, for router=threshold) and order them."""
    entries = []
    for pair, margin in zip(pairs, margins):
        difficult = router == "threshold" and margin is not None and margin < tau
        route = "sft" if difficult and routes_pairs else branch_name
        entries.append(PlanEntry(pair.index, margin, route, difficult))
    return [entries[i] for i in order_indices(margins, order, seed)]


def write_plan(entries: Sequence[PlanEntry], path: Path, metric: str) -> None:
    with path.open("w") as f:
        for e in entries:
            f.write(json.dumps({"index": e.index, "margin": e.margin, "route": e.route, "metric": metric}) + "\n")
