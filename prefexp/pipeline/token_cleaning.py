"""Stage 5b, token cleaning (optional): which chosen tokens the SFT terms train on.

Scores every chosen token by NLL(base) - NLL(reference) (``prefexp.engine.token_masks``, cached)
and keeps the top fraction (``prefexp.difficulty.token_cleaning``). Writes token_cleaning.json.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from ..config import layout
from ..config.schema import TrainConfig
from ..engine.distributed import is_main_process
from ..engine.token_masks import cached_clean_token_masks
from .model_source import ModelSource
from .tokens import TokenisedPairs

log = logging.getLogger(__name__)


def clean_tokens(c: TrainConfig, tokens: TokenisedPairs, model: ModelSource,
                 run_dir: Path) -> Optional[dict[int, list[int]]]:
    """``{index: [0/1 per chosen response token]}`` (1 = kept), or None when token cleaning is off."""
    t = c.token_cleaning
    if not t.enabled:
        return None
    base_dir, reference_dir = token_cleaning_models(c, model.path)
    masks = cached_clean_token_masks(lambda: model.load(base_dir), base_dir, lambda: model.load(reference_dir),
                                     reference_dir, tokens.examples, tokens.pad_token_id, t.batch_size,
                                     t.keep_fraction, t.level, Path(c.paths.cache_dir))
    kept = sum(sum(m) for m in masks.values())
    total = sum(len(m) for m in masks.values())
    summary = {"level": t.level, "keep_fraction": t.keep_fraction, "kept_tokens": kept, "tokens": total,
               "base_model": base_dir, "reference_model": reference_dir}
    log.info("token cleaning: kept %d of %d chosen tokens (%s, k=%g); base %s, reference %s", kept, total,
             t.level, t.keep_fraction, base_dir, reference_dir)
    if is_main_process():
        (run_dir / layout.TOKEN_CLEANING).write_text(json.dumps(summary, indent=2))
    return masks


def token_cleaning_models(c: TrainConfig, model_path: str) -> tuple[str, str]:
    """(theta = base, theta' = reference) model directories for token scoring."""
    t = c.token_cleaning
    reference = t.reference_model or model_path
    if t.base_model is not None:
        return t.base_model, reference
    from ..sandbox.model import ensure_sandbox_model  # validation allows base_model=null only for the sandbox

    spec = {**asdict(c.model.sandbox), "sft_steps": t.base_sft_steps}
    return str(ensure_sandbox_model(Path(c.paths.cache_dir), **spec)), reference
