"""Stage 4, tokenise: pairs -> prompt / response token ids (+ the K responses of each group),
read from the token cache (``prefexp.engine.token_cache``) when the same pairs were tokenised the
same way before."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..config import layout
from ..config.schema import TrainConfig
from ..engine.distributed import cache_writers_first, is_main_process
from ..engine.groups import attach_groups
from ..engine.token_cache import cached_tokens
from .load import PairData
from .model_source import ModelSource


@dataclass
class TokenisedPairs:
    """``examples``: one dict per pair, source order: ``index``, ``prompt_ids``, ``chosen_ids``,
    ``rejected_ids`` and, for K-response losses, ``group_ids``, ``group_positive``, ``chosen_slot``,
    ``rejected_slot``. Every ids value is a read-only int32 numpy view into one flat array
    (``prefexp.engine.token_table``): join them with ``prefexp.engine.batching.token_row``, never
    ``+`` (element-wise on arrays), and compare them with ``numpy.array_equal``."""
    examples: list[dict]
    pad_token_id: int
    has_groups: bool


def tokenise(c: TrainConfig, data: PairData, model: ModelSource, run_dir: Optional[Path] = None) -> TokenisedPairs:
    """Token ids of every pair; with ``run_dir`` (the training pairs, not a held-out or scoring pass)
    the truncation counts go to ``tokenization_summary.json`` there (the same on a cache hit)."""
    d = c.dataset
    tokenizer = model.tokenizer  # resolved before the block: resolving it has a rank barrier of its own
    with cache_writers_first():  # rank 0 (each node's, on a node-local cache) writes a missing entry; the others read it
        tokens = cached_tokens(data.pairs, tokenizer, d.max_length, d.max_prompt_length, data.use_groups,
                               Path(c.paths.cache_dir))
    if run_dir is not None and is_main_process():
        summary = {**asdict(tokens.stats), "max_length": d.max_length, "max_prompt_length": d.max_prompt_length}
        (run_dir / layout.TOKENIZATION_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    examples = tokens.examples
    if data.use_groups:
        examples = attach_groups(examples, data.pairs, tokens.group_ids, d.group_positive, d.group_positive_min)
    return TokenisedPairs(examples, tokenizer.pad_token_id, data.use_groups)
