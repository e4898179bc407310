"""Routers: which pairs the cut selects, and what happens to each side.

A router reads one margin per pair (higher = easier, for every metric) and marks pairs
*selected*:

    threshold   margin < tau (strict)                              MixDPO
    quantile    the hardest fraction tau of pairs (lowest margins;  the authors' advice for a
                ties broken by the original index)                 new dataset; 0 < tau < 1
    band        margin outside [band_low, band_high]              rejective sampling (3.6)
    random      as many pairs as threshold would select (margin     the control that tells
                < tau), drawn uniformly at random (seeded)          "which pairs" from "how many"
    none        nothing

``random`` keeps MixDPO's SFT share and ignores which pairs are difficult: if MixDPO's gain over
DPO comes from mixing some SFT into training rather than from routing the small-margin pairs, the
random arm matches it. Its draw depends on ``RouterSpec.seed`` (the run's seed) only, not on the
training order.

Each side then gets an action: ``route`` (the loss's own difficult-pair branch, e.g. MixDPO's
SFT; only for losses that route pairs), ``preference`` (the loss as usual), ``discard`` (dropped
before training: the common filtering baseline), or ``weight`` (the per-pair loss is multiplied
by the side's weight).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

ACTIONS = ("route", "preference", "discard", "weight")
ROUTERS = ("none", "threshold", "quantile", "band", "random")


@dataclass(frozen=True)
class RouterSpec:
    name: str  # none | threshold | quantile | band
    tau: float
    band_low: Optional[float] = None
    band_high: Optional[float] = None
    on_selected: str = "route"
    on_rest: str = "preference"
    selected_weight: float = 1.0
    rest_weight: float = 1.0
    seed: int = 0  # router=random: which pairs are drawn


def random_selection(margins: Sequence[float], tau: float, seed: int) -> list[bool]:
    """count = #(margin < tau); that many positions drawn without replacement, Random(seed)."""
    count = sum(m < tau for m in margins)
    drawn = set(random.Random(f"random-router-{seed}").sample(range(len(margins)), count))
    return [i in drawn for i in range(len(margins))]


def select(margins: Sequence[Optional[float]], spec: RouterSpec) -> list[bool]:
    """The selected mask (True = the cut's side), one entry per pair."""
    if spec.name == "none":
        return [False] * len(margins)
    if any(m is None for m in margins):
        raise ValueError(f"router={spec.name} needs a margin for every pair")
    if spec.name == "threshold":
        return [m < spec.tau for m in margins]  # type: ignore[operator]
    if spec.name == "quantile":
        count = int(spec.tau * len(margins))  # floor: never more than the asked fraction
        hardest = sorted(range(len(margins)), key=lambda i: (margins[i], i))[:count]
        chosen = set(hardest)
        return [i in chosen for i in range(len(margins))]
    if spec.name == "band":
        return [not (spec.band_low <= m <= spec.band_high) for m in margins]  # type: ignore[operator]
    if spec.name == "random":
        return random_selection(margins, spec.tau, spec.seed)  # type: ignore[arg-type]
    raise ValueError(f"router.name={spec.name!r} is unknown")


def difficulty_cut(spec: RouterSpec, margins: Sequence[Optional[float]]) -> float:
    """The margin below which a pair counts as difficult, with ``tau``'s one meaning under ``spec``:
    tau itself where tau is a margin (threshold, random, band, none), and under quantile (tau a
    fraction) the margin at the tau-quantile of ``margins``, so that the pairs below it are at most
    the hardest fraction tau (ties at the cut count as easy). Used for labels that must not depend on
    which pairs a run trains (the displacement probes), never for routing itself (:func:`select`)."""
    if spec.name != "quantile":
        return spec.tau
    known = sorted(m for m in margins if m is not None)
    count = int(spec.tau * len(known))
    return known[count] if count < len(known) else float("inf")


def action_for(selected: bool, spec: RouterSpec) -> str:
    return spec.on_selected if selected else spec.on_rest


def weight_for(selected: bool, spec: RouterSpec) -> float:
    action = action_for(selected, spec)
    if action != "weight":
        return 1.0
    return spec.selected_weight if selected else spec.rest_weight
