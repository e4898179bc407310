"""The reward stage: typed config in, a cached reward model and a cached scores file out.

dataset -> pairs -> tokens (the policy pipeline's tokenizer, chat template and truncation) ->
Bradley-Terry reward model (trained once per key) -> scores of ``score_dataset`` (default: the
training dataset) -> ``reward_summary.json`` in the run dir.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from ..config.schema import DatasetConfig
from ..data.records import PreferencePair, to_pairs
from ..data.sources import describe, load_rows
from .cache import base_fingerprint, cached_reward_scores, reward_model_dir, reward_model_key
from .command import reward_command
from .model import mean_bt_loss, pairwise_accuracy
from .schema import RewardConfig

log = logging.getLogger(__name__)


def load_pairs(dataset: DatasetConfig) -> list[PreferencePair]:
    """All valid pairs of ``dataset``; ratings are not required (the reward model replaces them)."""
    return to_pairs(load_rows(dataset), describe(dataset), dataset.on_invalid, require_scores=False)


def run_reward_stage(c: RewardConfig, run_dir: Path) -> Path:
    """Train (or reuse) the reward model and score the pairs; returns the scores file."""
    import torch
    from transformers import AutoTokenizer

    from ..engine.reference import examples_fingerprint
    from ..engine.model_path import resolve_model_path
    from ..engine.tokenize import ensure_chat_template, tokenize_pairs

    if c.num_threads is not None:
        torch.set_num_threads(c.num_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(c.paths.cache_dir)
    model_path = resolve_model_path(c)  # type: ignore[arg-type]  # reads only .model and .paths
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=c.model.trust_remote_code)
    ensure_chat_template(tokenizer, c.model.chat_template)

    train_pairs = load_pairs(c.dataset)
    train_examples, _ = tokenize_pairs(train_pairs, tokenizer, c.dataset.max_length, c.dataset.max_prompt_length)
    if c.score_dataset is None:
        score_examples = train_examples
    else:
        score_pairs_ = load_pairs(c.score_dataset)
        score_examples, _ = tokenize_pairs(score_pairs_, tokenizer, c.score_dataset.max_length,
                                           c.score_dataset.max_prompt_length)

    scores, path = cached_reward_scores(model_path, c.reward_model, train_examples, score_examples, tokenizer,
                                        cache_dir, build_if_missing=True,
                                        trust_remote_code=c.model.trust_remote_code, force=c.force)
    rm_key = reward_model_key(base_fingerprint(model_path, cache_dir), examples_fingerprint(train_examples),
                              c.reward_model)
    rm_dir = reward_model_dir(cache_dir, rm_key)
    done = json.loads((rm_dir / "DONE").read_text()) if (rm_dir / "DONE").is_file() else None
    summary = {
        "scores_file": str(path),
        "reward_model_dir": str(rm_dir),
        "reward_model_key": rm_key,
        "base_model": model_path,
        "train_pairs": len(train_examples),
        "scored_pairs": len(scores),
        "scored_dataset": describe(c.score_dataset or c.dataset),
        # On the training data this is the fit, not a held-out accuracy.
        "pairwise_accuracy": pairwise_accuracy(scores),
        "bt_loss": mean_bt_loss(scores),
        "reward_model_training": done,
        "hparams": asdict(c.reward_model),
        "command": reward_command(c.model, c.dataset, c.reward_model, cache_dir),
    }
    (run_dir / "reward_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log.info("reward scores of %d pairs: pairwise accuracy %.3f, BT loss %.4f -> %s", len(scores),
             summary["pairwise_accuracy"], summary["bt_loss"], path)
    return path
