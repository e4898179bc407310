"""The boundary between the config and the code below it: the validated settings every stage
receives, and the error validation raises (prefexp.setup.validate builds both)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import TrainConfig


class ConfigError(ValueError):
    """Raised with every problem of a config, one per line."""


def format_errors(errors: list[str]) -> str:
    """One problem: one line (the entry point prints ``error: invalid config: <problem>``); several:
    a list, one problem per line, so none hides behind another."""
    if len(errors) == 1:
        return f"invalid config: {errors[0]}"
    return "invalid config:\n  - " + "\n  - ".join(errors)


@dataclass
class Settings:
    """The validated config: typed groups plus the loss object, built once."""

    config: TrainConfig
    loss: Any  # a prefexp.losses.PreferenceLoss
    loss_name: str
    warnings: list[str]
    # the margin metrics the run computes (prefexp.difficulty.metrics.needed_metrics, resolved once):
    # the router's, the curriculum's and the loss's own
    metrics: frozenset[str]
    # the router with tau's one meaning (prefexp.difficulty.router.RouterSpec): the plan, the held-out
    # plan and the probe labels (difficulty_cut) all read this one
    router: Any
