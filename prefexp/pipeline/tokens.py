"""Stage 4, tokenise: pairs -> prompt / response token ids (+ the K responses of each group)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config.schema import TrainConfig
from ..engine.groups import add_groups
from ..engine.tokenize import tokenize_pairs
from .load import PairData
from .model_source import ModelSource


@dataclass
class TokenisedPairs:
    """``examples``: one dict per pair, source order: ``index``, ``prompt_ids``, ``chosen_ids``,
    ``rejected_ids`` and, for K-response losses, ``group_ids``, ``group_positive``, ``chosen_slot``,
    ``rejected_slot``."""
    examples: list[dict]
    pad_token_id: int
    has_groups: bool


def tokenise(c: TrainConfig, data: PairData, model: ModelSource) -> TokenisedPairs:
    d = c.dataset
    examples, _ = tokenize_pairs(data.pairs, model.tokenizer, d.max_length, d.max_prompt_length)
    if data.use_groups:
        examples = add_groups(examples, data.pairs, model.tokenizer, d.max_length, d.group_positive,
                              d.group_positive_min)
    return TokenisedPairs(examples, model.tokenizer.pad_token_id, data.use_groups)
