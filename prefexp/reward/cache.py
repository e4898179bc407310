"""Reward models and their scores, cached on disk and found again by key.

Layout under ``cache_dir`` (``paths.cache_dir``)::

    reward_models/<rm key>/            save_pretrained model + tokenizer, DONE (json summary) last
    reward_scores/<rm key>-<data fp>.json   {"<pair index>": [r_chosen, r_rejected], ...}

* ``data fp`` = :func:`examples_fingerprint` of the tokenized pairs (index + token ids), as for
  reference log-probs: any change of rows, tokenizer, chat template or truncation misses the cache.
* ``rm key`` = sha256 of {base weights fingerprint, training data fp, the recipe's hyperparameters
  (:func:`key_hparams`), :data:`REWARD_MODEL_VERSION`}. The key doubles as the reward model's
  fingerprint in the scores key, so a lookup needs no model load.

A reward model directory is complete only once ``DONE`` exists. Both entries are made by
:func:`prefexp.cachefs.build_once`: built under a unique temporary name and renamed into place,
under a file lock, so an interrupted run never leaves an entry a later run would trust (its
leftovers are removed by the next build of that key), and concurrent cold runs train and score
once while the others wait and reuse the result.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..cachefs import CacheCorrupt, build_folder_once, cached_json, read_checked_json
from ..data.records import PreferencePair
from ..engine.reference import examples_fingerprint, pair_values_problem, weights_fingerprint
from .hparams import RewardModelConfig, key_hparams

log = logging.getLogger(__name__)

# Bump when the training or scoring recipe changes in a way the hyperparameters do not capture.
REWARD_MODEL_VERSION = 1


class RewardScoresMissing(RuntimeError):
    """Reward-model scores are not cached and building them was not allowed."""


@lru_cache(maxsize=None)
def base_fingerprint(model_path: str, cache_dir: Path) -> str:
    """``weights_fingerprint`` once per process (cheap after the first hash of a folder: memoised)."""
    return weights_fingerprint(model_path, cache_dir)


def reward_model_key(base_fp: str, data_fp: str, hparams: RewardModelConfig) -> str:
    blob = json.dumps({"version": REWARD_MODEL_VERSION, "base": base_fp, "data": data_fp,
                       "hparams": key_hparams(hparams)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reward_model_dir(cache_dir: Path, rm_key: str) -> Path:
    return Path(cache_dir) / "reward_models" / rm_key


def scores_path(cache_dir: Path, rm_key: str, data_fingerprint: str) -> Path:
    return Path(cache_dir) / "reward_scores" / f"{rm_key}-{data_fingerprint}.json"


def ensure_reward_model(model_path: str, hparams: RewardModelConfig, examples: Sequence[dict], tokenizer,
                        cache_dir: Path, trust_remote_code: bool = False, force: bool = False,
                        rm_key: Optional[str] = None) -> Path:
    """Return the directory of the reward model trained on ``examples``; train it first if needed."""
    from .model import train_reward_model

    rm_key = rm_key or reward_model_key(base_fingerprint(model_path, cache_dir), examples_fingerprint(examples), hparams)
    final = reward_model_dir(cache_dir, rm_key)
    summary: dict = {}

    def build(tmp: Path) -> None:
        summary.update(train_reward_model(model_path, hparams, examples, tokenizer, tmp, trust_remote_code))
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        summary.update(base_model=model_path, base_fingerprint=base_fingerprint(model_path, cache_dir),
                       data_fingerprint=examples_fingerprint(examples), hparams=key_hparams(hparams),
                       version=REWARD_MODEL_VERSION)
        (tmp / "DONE").write_text(json.dumps(summary, indent=2, default=str) + "\n")

    # checksummed (MANIFEST.json) and verified on every use; force: rebuild even a complete one
    if not build_folder_once(final, build, what="reward model", force=force):
        log.info("reward model: cache hit %s", final)
        return final
    log.info("reward model: trained %d steps (loss %.4f) on %d pairs -> %s", summary["steps"],
             summary["train_loss"], summary["pairs"], final)
    return final


def load_reward_model(rm_dir: Path, dtype: str = "float32", trust_remote_code: bool = False):
    from transformers import AutoModelForSequenceClassification

    from .model import DTYPES

    return AutoModelForSequenceClassification.from_pretrained(rm_dir, dtype=DTYPES[dtype],
                                                              trust_remote_code=trust_remote_code)


def read_scores(path: Path) -> dict[int, tuple[float, float]]:
    """A verified scores file (:func:`prefexp.cachefs.read_checked_json`)."""
    return _as_scores(read_checked_json(path, check=pair_values_problem))


def _as_scores(data: dict) -> dict[int, tuple[float, float]]:
    return {int(k): (float(v[0]), float(v[1])) for k, v in data.items()}


def cached_reward_scores(model_path: str, hparams: RewardModelConfig, train_examples: Sequence[dict],
                         score_examples: Sequence[dict], tokenizer, cache_dir: Path, build_if_missing: bool,
                         command: Optional[str] = None, trust_remote_code: bool = False,
                         force: bool = False) -> tuple[dict[int, tuple[float, float]], Path]:
    """``({pair index: (r_chosen, r_rejected)}, scores file)`` for ``score_examples`` under the reward
    model trained on ``train_examples`` (tokenized pairs from ``tokenize_pairs``).

    Cache hit: read the file, load nothing. Miss: raise :class:`RewardScoresMissing` (naming
    ``command``) unless ``build_if_missing``; otherwise train the reward model if its directory is
    missing too, score, and cache. ``force`` retrains and rescores.
    """
    rm_key = reward_model_key(base_fingerprint(model_path, cache_dir), examples_fingerprint(train_examples), hparams)
    path = scores_path(cache_dir, rm_key, examples_fingerprint(score_examples))
    keys = [str(e["index"]) for e in score_examples]
    if path.is_file() and not force:
        try:
            scores = _as_scores(read_checked_json(path, keys=keys, check=pair_values_problem))
            log.info("reward scores: cache hit %s", path)
            return scores, path
        except CacheCorrupt:
            pass  # cached_json below moves it aside (one warning) and rebuilds, if building is allowed
    if not build_if_missing:
        how = command or ("python -m prefexp.reward model=<model option> dataset=<dataset option> "
                          f"(with the settings of this run; base model {model_path})")
        raise RewardScoresMissing(
            f"reward-model scores are not cached (looked for {path}). Build them first with:\n  {how}\n"
            "or allow building them inside this run.")
    from .model import score_pairs

    def compute() -> dict[str, list[float]]:
        rm_dir = ensure_reward_model(model_path, hparams, train_examples, tokenizer, cache_dir, trust_remote_code,
                                     force=force, rm_key=rm_key)
        model = load_reward_model(rm_dir, hparams.dtype, trust_remote_code)
        if torch.cuda.is_available():
            model.to("cuda")
        scored = score_pairs(model, score_examples, tokenizer.pad_token_id, hparams.score_batch_size)
        return {str(k): list(v) for k, v in sorted(scored.items())}

    data, built = cached_json(path, compute, what="reward scores", keys=keys, check=pair_values_problem, force=force)
    if built:
        log.info("reward scores: scored %d pairs, cached at %s", len(data), path)
    else:
        log.info("reward scores: built by another process, reusing %s", path)
    return _as_scores(data), path


def reward_margins(model_path: str, hparams: RewardModelConfig, pairs: Sequence[PreferencePair], tokenizer,
                   max_length: int, max_prompt_length: int, cache_dir: Path, build_if_missing: bool,
                   command: Optional[str] = None, trust_remote_code: bool = False) -> dict[int, float]:
    """Label-aligned reward-model margins ``{pair.index: r(chosen) - r(rejected)}`` (MADPO's ``m``,
    MixDPO's reward-model difficulty), under a Bradley-Terry reward model trained on these same pairs.

    Args:
        model_path: base weights of the reward model (``resolve_model_path(c)``; same as the policy).
        hparams: the reward-model recipe (``reward_model`` config group).
        pairs: the training pairs; the reward model is trained on and scores exactly these.
        tokenizer: the tokenizer of ``model_path`` after ``ensure_chat_template`` (as in training).
        max_length, max_prompt_length: ``dataset.max_length`` / ``dataset.max_prompt_length``.
        cache_dir: ``paths.cache_dir``.
        build_if_missing: on a cache miss, train and score here (True) or raise
            :class:`RewardScoresMissing` naming ``command`` (False).
        command: the exact ``python -m prefexp.reward ...`` line for this run (:func:`reward_command`).

    Same inputs give the same cache keys as ``python -m prefexp.reward`` with the same model,
    dataset and reward_model settings, so scores built by the CLI are found here and vice versa.
    """
    from ..engine.tokenize import tokenize_pairs

    examples, _ = tokenize_pairs(pairs, tokenizer, max_length, max_prompt_length)
    scores, _ = cached_reward_scores(model_path, hparams, examples, examples, tokenizer, cache_dir,
                                     build_if_missing, command, trust_remote_code)
    return {index: c - r for index, (c, r) in scores.items()}
