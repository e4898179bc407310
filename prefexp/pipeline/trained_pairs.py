"""Which planned pairs a run trains on: all of them, unless ``trainer.max_steps`` ends the run
inside its first pass over the plan. Then only that prefix of the plan (training order) gets
tokens into the Trainer and a reference pass: a 4-step run on 60k pairs scores 64 of them, not
60k. A resume with more steps gets the longer prefix (its reference pass is another cache entry);
the Trainer's own resume arithmetic then skips the steps already done, as over the full plan.

The full plan is kept when the prefix cannot be known or is not the whole story: curriculum
stages (their passes and schedules are laid out over the whole plan), K-response groups, and a
``reference_logp`` difficulty metric (the pass over every pair already ran to plan the order).
"""
from __future__ import annotations

from typing import Sequence

from ..config.settings import Settings
from ..difficulty.plan import PlanEntry
from .trainer_setup import pairs_per_step


def trained_plan(settings: Settings, plan: Sequence[PlanEntry], use_groups: bool) -> list[PlanEntry]:
    c = settings.config
    t = c.trainer
    if t.max_steps <= 0 or c.curriculum.stages or use_groups or "reference_logp" in settings.metrics:
        return list(plan)
    return list(plan[:t.max_steps * pairs_per_step(c)])
