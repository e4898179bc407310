"""Stage 2, score difficulty: one margin per pair for every metric the run needs.

``rating`` is free (the data's scores); ``reward_model`` trains (or reads from the cache) a
Bradley-Terry reward model; ``reference_logp`` runs the reference pass (cached, so the later
reference stage reads it back). See ``prefexp.difficulty.metrics`` for the definitions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config.settings import Settings
from ..difficulty.plan import rating_margins
from .load import PairData
from .model_source import ModelSource
from .reference import reference_pass
from .tokens import tokenise


@dataclass
class Margins:
    by_metric: dict[str, dict[int, Optional[float]]]  # metric -> pair index -> margin (higher = easier)


def score_difficulty(settings: Settings, data: PairData, model: ModelSource) -> Margins:
    metrics = settings.metrics  # resolved once, in prefexp.setup.validate
    by_metric = {"rating": {p.index: m for p, m in zip(data.pairs, rating_margins(data.pairs))}}
    if "reward_model" in metrics:
        by_metric["reward_model"] = reward_model_margins(settings, data, model)
    if "reference_logp" in metrics:
        by_metric["reference_logp"] = reference_logp_margins(settings, data, model)
    return Margins(by_metric)


def reward_model_margins(settings: Settings, data: PairData, model: ModelSource) -> dict[int, float]:
    """MADPO's m / the reward_model metric: built (or read from the cache) by ``prefexp.reward``."""
    from ..engine.distributed import cache_writers_first
    from ..reward import reward_command, reward_margins

    c = settings.config
    command = reward_command(c.model, c.dataset, c.reward_model, c.paths.cache_dir)
    with cache_writers_first():  # rank 0 (or each node's) trains and scores, the others read the cache
        return reward_margins(model.path, c.reward_model, data.pairs, model.tokenizer, c.dataset.max_length,
                              c.dataset.max_prompt_length, Path(c.paths.cache_dir), c.reward_model.build_if_missing,
                              command=command, trust_remote_code=c.model.trust_remote_code)


def reference_logp_margins(settings: Settings, data: PairData, model: ModelSource) -> dict[int, float]:
    """logp_ref(chosen)/|chosen| - logp_ref(rejected)/|rejected| from the (cached) reference pass."""
    tokens = tokenise(settings.config, data, model)
    reference = reference_pass(settings, tokens, model)
    return {e["index"]: reference.pairs[e["index"]][0] / max(1, len(e["chosen_ids"]))
            - reference.pairs[e["index"]][1] / max(1, len(e["rejected_ids"])) for e in tokens.examples}
