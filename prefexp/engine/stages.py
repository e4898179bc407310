"""The learning-rate schedule of ``curriculum.stages``: each stage's own warm-up and decay, restarted
at the stage's first optimizer step (prefexp.difficulty.stages decides the steps).

Each stage's curve is transformers' own schedule of that name (``get_scheduler``) over the stage's
steps, so a one-stage run equals the Trainer's schedule (a test pins it); the whole is one
``LambdaLR``, whose state (the step count) is saved and restored with every checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class StageWindow:
    first: int  # first optimizer step (0-based) of the stage
    end: int  # one past its last step
    lr_scheduler: str  # a transformers SchedulerType name
    warmup_ratio: float


def stage_lr_lambda(window: StageWindow) -> Callable[[int], float]:
    """Multiplier of the peak lr at step t of the stage, from transformers' schedule of that name."""
    from transformers import get_scheduler

    steps = max(1, window.end - window.first)
    scratch = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)  # only to read the curve off
    scheduler = get_scheduler(window.lr_scheduler, scratch, num_warmup_steps=math.ceil(window.warmup_ratio * steps),
                              num_training_steps=steps)
    return scheduler.lr_lambdas[0]


def staged_lambda(windows: Sequence[StageWindow]) -> Callable[[int], float]:
    """step -> multiplier: the stage holding the step, at the step's offset inside it.

    A plain function on purpose: LambdaLR's state_dict skips functions (it would pickle a callable
    object's attributes, which the Trainer's ``weights_only`` load refuses on resume); the state that
    matters is the step count, and the curves are rebuilt from the config on resume."""
    windows = [w for w in windows if w.end > w.first]
    curves = [stage_lr_lambda(w) for w in windows]

    def multiplier(step: int) -> float:
        for w, curve in zip(windows, curves):
            if step < w.end:
                return curve(max(0, step - w.first))
        return 0.0  # past the last stage (cannot happen: the data end with it)

    return multiplier


def staged_scheduler(optimizer, windows: Sequence[StageWindow]) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, staged_lambda(windows))
