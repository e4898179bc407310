"""``curriculum.stages``: the plan's pairs trained as stages in turn, each with its own passes.

MixDPO's official schedule is one sorted pass with one cosine schedule (methods.md, "Schedule"); its
paper also speaks of a "DPO stage" and an "SFT stage". Read as two stages, each gets its own epochs
and a learning-rate schedule that restarts (``conf/curriculum/two_stage.yaml``), so the routed pairs
are not trained at the tail of one decay (about 0.5 % of the peak rate under easy_to_hard + cosine).

A stage selects planned entries by route, keeping the plan's order inside the stage; ``epochs`` = 2
repeats them, 0.5 trains the first half. An entry may sit in several stages; one in none is not trained.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from .plan import PlanEntry


def in_stage(entry: PlanEntry, routes: Sequence[str]) -> bool:
    routed = entry.route == "sft"
    return "all" in routes or ("sft" in routes and routed) or ("preference" in routes and not routed)


def staged_plan(kept: Sequence[PlanEntry], stages: Sequence) -> tuple[list[PlanEntry], list[int]]:
    """(entries in training order, each tagged with its stage, and the number of entries per stage).

    ``stages``: objects with ``routes`` and ``epochs`` (config.schema.StageSpec).
    """
    order, sizes = [], []
    for number, stage in enumerate(stages):
        chosen = [e for e in kept if in_stage(e, stage.routes)]
        whole, part = divmod(stage.epochs, 1.0)
        passes = chosen * int(whole) + chosen[: round(part * len(chosen))]
        order += [dataclasses.replace(e, stage=number) for e in passes]
        sizes.append(len(passes))
    return order, sizes


def stage_step_windows(sizes: Sequence[int], pairs_per_step: int) -> list[tuple[int, int]]:
    """[first, end) optimizer steps of each stage: a step belongs to the stage of its first pair, so
    only the one step that straddles a boundary mixes two stages' pairs."""
    windows, seen = [], 0
    for n in sizes:
        first = math.ceil(seen / pairs_per_step)
        seen += n
        windows.append((first, math.ceil(seen / pairs_per_step)))
    return windows
