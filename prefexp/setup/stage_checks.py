"""Checks of ``curriculum.stages`` (prefexp.difficulty.stages): each error names the key and the fix."""
from __future__ import annotations

from ..config.schema import TrainConfig

STAGE_ROUTES = ("all", "preference", "sft")


def stage_errors(c: TrainConfig) -> list[str]:
    from transformers import SchedulerType

    schedulers = [s.value for s in SchedulerType]
    errors = []
    stages = c.curriculum.stages
    if stages and c.trainer.num_epochs != 1.0:
        errors.append(f"trainer.num_epochs={c.trainer.num_epochs:g} with curriculum.stages: each stage sets its own "
                      "epochs (curriculum.stages[i].epochs); leave trainer.num_epochs=1")
    for i, stage in enumerate(stages):
        key = f"curriculum.stages[{i}]"
        bad = [r for r in stage.routes if r not in STAGE_ROUTES]
        if bad or not stage.routes:
            errors.append(f"{key}.routes={list(stage.routes)} must be a non-empty list of {list(STAGE_ROUTES)}")
        if not stage.epochs > 0:
            errors.append(f"{key}.epochs={stage.epochs} must be > 0")
        if stage.lr_scheduler is not None and stage.lr_scheduler not in schedulers:
            errors.append(f"{key}.lr_scheduler={stage.lr_scheduler!r} is not one of {schedulers}")
        if stage.warmup_ratio is not None and not 0 <= stage.warmup_ratio < 1:
            errors.append(f"{key}.warmup_ratio={stage.warmup_ratio} must be in [0, 1)")
    return errors
