"""Stage 4, tokenise: pairs -> prompt / response token ids (+ the K responses of each group)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..config.schema import TrainConfig
from ..engine.distributed import is_main_process
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


def tokenise(c: TrainConfig, data: PairData, model: ModelSource, run_dir: Optional[Path] = None) -> TokenisedPairs:
    """Token ids of every pair; with ``run_dir`` (the training pairs, not a held-out or scoring pass)
    the truncation counts go to ``tokenization_summary.json`` there."""
    d = c.dataset
    examples, stats = tokenize_pairs(data.pairs, model.tokenizer, d.max_length, d.max_prompt_length)
    if run_dir is not None and is_main_process():
        summary = {**asdict(stats), "max_length": d.max_length, "max_prompt_length": d.max_prompt_length}
        (run_dir / "tokenization_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if data.use_groups:
        examples = add_groups(examples, data.pairs, model.tokenizer, d.max_length, d.group_positive,
                              d.group_positive_min)
    return TokenisedPairs(examples, model.tokenizer.pad_token_id, data.use_groups)
