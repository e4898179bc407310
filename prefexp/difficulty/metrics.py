"""Which margin metrics a run needs: the router's and curriculum's, and the loss's own.

Every metric yields one number per pair (higher = easier), keyed by the pair's index:

    rating          score_chosen - score_rejected (the data's ratings)
    reward_model    r(chosen) - r(rejected) of a Bradley-Terry reward model trained on these pairs
    reference_logp  logp_ref(chosen)/|chosen| - logp_ref(rejected)/|rejected| (free once the
                    reference log-probs are cached)

The router and curriculum read ``router.metric``; a loss that defines its margins on one metric
(``margin_metric``, MADPO: reward_model) reads that one, whatever the router uses.
"""
from __future__ import annotations

from typing import Optional

from ..config.schema import TrainConfig

MODEL_METRICS = frozenset({"reward_model", "reference_logp"})  # need a model (and tokens) to score


def loss_metric(c: TrainConfig, loss) -> Optional[str]:
    """The metric whose margins the loss takes (None: it takes none)."""
    if not loss.needs_margins:
        return None
    return loss.margin_metric or c.router.metric


def needed_metrics(c: TrainConfig, loss) -> set[str]:
    uses_router = c.router.name != "none" or c.curriculum.order != "none"
    metrics = {c.router.metric} if uses_router else set()
    if loss_metric(c, loss):
        metrics.add(loss_metric(c, loss))
    return metrics
