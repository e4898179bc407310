"""Held-out pairs: split off before anything is planned, scored like training pairs, never trained on.

``dataset.eval_fraction`` draws that fraction of the loaded pairs with ``Random(f"heldout-{seed}")``
(the same pairs on every rank and every run with that seed); ``dataset.eval_split`` reads another
split of the same hub dataset. Held-out pairs get their margins (and so their route, where a router
is on), token ids and reference log-probs through the same stages and the same on-disk cache as
the training pairs, so the Trainer's eval loop computes the training objective on them.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from typing import Optional

from ..config.settings import Settings
from ..data.records import to_pairs
from ..data.sources import describe, load_rows
from ..difficulty.metrics import loss_metric
from ..difficulty.plan import make_plan
from .difficulty import score_difficulty
from .examples import training_examples
from .load import PairData
from .model_source import ModelSource
from .reference import reference_pass
from .tokens import tokenise

log = logging.getLogger(__name__)


@dataclass
class HeldOut:
    data: PairData
    examples: list[dict]  # eval examples: token ids, reference log-probs, margins, routes


def split_heldout(settings: Settings, data: PairData) -> tuple[PairData, Optional[PairData]]:
    """(the pairs to train on, the held-out pairs or None)."""
    d = settings.config.dataset
    if d.eval_split is not None:
        rows = load_rows(replace(d, split=d.eval_split))
        needs_rating = "rating" in settings.metrics
        pairs = to_pairs(rows, f"{describe(d)} split {d.eval_split}", d.on_invalid, require_scores=needs_rating)
        log.info("held-out pairs: %d from split %s", len(pairs), d.eval_split)
        return data, PairData(pairs, use_groups=data.use_groups)
    if d.eval_fraction <= 0:
        return data, None
    n = max(1, round(d.eval_fraction * len(data.pairs)))
    if n >= len(data.pairs):
        from ..errors import InputError

        raise InputError(f"dataset.eval_fraction={d.eval_fraction} holds out {n} of {len(data.pairs)} pairs and "
                         "leaves none to train on; pass a smaller fraction, e.g. dataset.eval_fraction=0.05")
    chosen = set(random.Random(f"heldout-{settings.config.seed}").sample(range(len(data.pairs)), n))
    train = [p for i, p in enumerate(data.pairs) if i not in chosen]
    held = [p for i, p in enumerate(data.pairs) if i in chosen]
    log.info("held-out pairs: %d of %d (dataset.eval_fraction=%g, seed %d)", n, len(data.pairs), d.eval_fraction,
             settings.config.seed)
    return replace(data, pairs=train), PairData(held, use_groups=data.use_groups)


def heldout_examples(settings: Settings, held: PairData, model: ModelSource) -> HeldOut:
    """The held-out pairs as eval examples: routed by the run's router on their own margins (no
    curriculum: order does not matter to an eval), with reference log-probs from the cache."""
    c, loss = settings.config, settings.loss
    margins = score_difficulty(settings, held, model)
    by_router = margins.by_metric.get(c.router.metric)
    router_margins = [by_router[p.index] for p in held.pairs] if by_router is not None else [None] * len(held.pairs)
    branch = loss.preference_branch or settings.loss_name
    kept, discarded = make_plan(held.pairs, router_margins, settings.router, "none", c.seed, branch, loss.routes_pairs)
    by_loss = loss_metric(c, loss)
    if by_loss is not None and by_loss != c.router.metric:
        for entry in kept:
            entry.loss_margin = margins.by_metric[by_loss][entry.index]
    if discarded:
        log.info("held-out pairs: %d discarded by the router are not evaluated", len(discarded))
    tokens = tokenise(c, held, model)
    reference = reference_pass(settings, tokens, model)
    return HeldOut(held, training_examples(tokens, reference, None, kept))
