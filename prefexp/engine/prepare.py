"""Per-example inputs that need a model or the tokenizer: difficulty margins of every metric,
token-cleaning masks and group reference log-probs. Each is cached on disk by its own module.

Margins: every metric yields one number per pair (higher = easier), keyed by the pair's index:

    rating          score_chosen - score_rejected (the data's ratings)
    reward_model    r(chosen) - r(rejected) of a Bradley-Terry reward model trained on these pairs
    reference_logp  logp_ref(chosen)/|chosen| - logp_ref(rejected)/|rejected| (free once the
                    reference log-probs are cached)

The router and curriculum read ``router.metric``; a loss that defines its margins on one metric
(``margin_metric``, MADPO: reward_model) reads that one, whatever the router uses.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..config.schema import TrainConfig
from ..data.records import PreferencePair

log = logging.getLogger(__name__)


def loss_metric(c: TrainConfig, loss) -> Optional[str]:
    """The metric whose margins the loss takes (None: it takes none)."""
    if not loss.needs_margins:
        return None
    return getattr(loss, "margin_metric", None) or c.router.metric


def needed_metrics(c: TrainConfig, loss) -> set[str]:
    uses_router = c.router.name != "none" or c.curriculum.order != "none"
    metrics = {c.router.metric} if uses_router else set()
    if loss_metric(c, loss):
        metrics.add(loss_metric(c, loss))
    return metrics


def reward_model_margins(c: TrainConfig, model_path: str, tokenizer, pairs: Sequence[PreferencePair]) -> dict[int, float]:
    """MADPO's m / the reward_model metric: built (or read from the cache) by ``prefexp.reward``."""
    from ..reward import reward_command, reward_margins

    command = reward_command(c.model, c.dataset, c.reward_model, c.paths.cache_dir)
    return reward_margins(model_path, c.reward_model, pairs, tokenizer, c.dataset.max_length,
                          c.dataset.max_prompt_length, Path(c.paths.cache_dir), c.reward_model.build_if_missing,
                          command=command, trust_remote_code=c.model.trust_remote_code)


def reference_logp_margins(examples: Sequence[dict]) -> dict[int, float]:
    return {e["index"]: e["reference_chosen_logps"] / max(1, len(e["chosen_ids"]))
            - e["reference_rejected_logps"] / max(1, len(e["rejected_ids"])) for e in examples}


def token_cleaning_models(c: TrainConfig, model_path: str) -> tuple[str, str]:
    """(theta = base, theta' = reference) model directories for token scoring."""
    t = c.token_cleaning
    reference = t.reference_model or model_path
    if t.base_model is not None:
        return t.base_model, reference
    from ..sandbox.model import ensure_sandbox_model  # validation allows base_model=null only for the sandbox

    spec = {**asdict(c.model.sandbox), "sft_steps": t.base_sft_steps}
    return str(ensure_sandbox_model(Path(c.paths.cache_dir), **spec)), reference


def attach_clean_masks(c: TrainConfig, model_path: str, examples: list[dict], pad_token_id: int,
                       load: Callable[[str], object]) -> dict:
    """Set ``example["clean_keep"]`` (0/1 per chosen token); returns a summary for the log."""
    from ..difficulty.token_cleaning import cached_clean_token_masks

    t = c.token_cleaning
    base_dir, reference_dir = token_cleaning_models(c, model_path)
    masks = cached_clean_token_masks(lambda: load(base_dir), base_dir, lambda: load(reference_dir), reference_dir,
                                     examples, pad_token_id, t.batch_size, t.keep_fraction, t.level,
                                     Path(c.paths.cache_dir))
    for example in examples:
        example["clean_keep"] = masks[example["index"]]
    kept = sum(sum(m) for m in masks.values())
    total = sum(len(m) for m in masks.values())
    summary = {"level": t.level, "keep_fraction": t.keep_fraction, "kept_tokens": kept, "tokens": total,
               "base_model": base_dir, "reference_model": reference_dir}
    log.info("token cleaning: kept %d of %d chosen tokens (%s, k=%g); base %s, reference %s", kept, total,
             t.level, t.keep_fraction, base_dir, reference_dir)
    return summary


def attach_group_reference(examples: list[dict], reference: Callable[[list[dict]], dict]) -> None:
    """``example["group_reference_logps"]``: the reference log-prob of each of its K responses."""
    from .groups import group_reference_examples

    width = max(len(e["group_ids"]) for e in examples)
    values = reference(group_reference_examples(examples, width))
    for e in examples:
        e["group_reference_logps"] = [values[e["index"] * width + k][0] for k in range(len(e["group_ids"]))]
