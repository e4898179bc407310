"""Reference log-probs: computed once per example and cached on disk, never once per epoch.

The cache key is the reference weights' fingerprint plus the exact token ids, so the same cache
serves every run and sweep point that trains on the same data from the same reference (sweeps
over tau, curriculum or loss hyperparameters reuse it), and any change of data, tokenizer,
truncation or weights misses it. Weights are identified without re-reading them
(:mod:`.weights_key`); concurrent cold runs compute the pass once (:func:`prefexp.cachefs.build_once`).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..cachefs import cached_json, read_checked_json
from .batching import PairCollator
from .logps import forward_logps
from .progress import Progress
from .weights_key import weights_fingerprint  # noqa: F401  (re-exported: the reward and token caches use it)

log = logging.getLogger(__name__)


def examples_fingerprint(examples: Sequence[dict]) -> str:
    """16 hex digits of the index and token ids of every example. Ids are hashed as the JSON of
    plain int lists whether they are lists or the token cache's int32 arrays, so the key of a cache
    entry written before the token cache existed is unchanged."""
    h = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e["index"]):
        ids = [_int_list(e[k]) for k in ("prompt_ids", "chosen_ids", "rejected_ids")]
        h.update(json.dumps([e["index"], *ids]).encode())
    return h.hexdigest()[:16]


def _int_list(ids) -> list[int]:
    return ids.tolist() if hasattr(ids, "tolist") else ids


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def reference_cache_path(model_dir: str, examples: Sequence[dict], cache_dir: Path, precision: str = "fp32") -> Path:
    """The cache file of one (reference weights, token ids, mixed precision) triple."""
    key = f"{weights_fingerprint(model_dir, cache_dir)}-{examples_fingerprint(examples)}"
    suffix = "" if precision == "fp32" else f"-{precision}"  # fp32 keeps the original file names
    return Path(cache_dir) / "reference_logps" / f"{key}{suffix}.json"


@torch.no_grad()
def compute_reference_logps(model, examples: Sequence[dict], pad_token_id: int, batch_size: int,
                            precision: str = "fp32") -> dict[int, tuple[float, float]]:
    """Summed response log-probs of every pair. ``precision`` bf16 / fp16 runs the forward under
    the autocast the Trainer uses for the policy (mixed precision), so that at step 1 policy and
    reference agree exactly (DPO's first loss is ln 2, not ln 2 plus rounding noise)."""
    model.eval()
    collate = PairCollator(pad_token_id)
    device = next(model.parameters()).device
    out: dict[int, tuple[float, float]] = {}
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["chosen_ids"]) + len(examples[i]["rejected_ids"]))
    bar = tqdm(range(0, len(order), batch_size), desc="reference log-probs", unit="batch", disable=None)
    progress = Progress(len(order), "reference log-probs", "pairs", log)  # off a terminal
    for start in bar:  # length-sorted batches waste less padding
        chunk = [examples[i] for i in order[start: start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        with torch.autocast(device.type, dtype=AUTOCAST.get(precision, torch.float32), enabled=precision in AUTOCAST):
            logps, _ = forward_logps(model, batch)
        n = len(chunk)
        for e, c, r in zip(chunk, logps[:n].tolist(), logps[n:].tolist()):
            out[e["index"]] = (c, r)
        progress.update(len(out))
    return out


def pair_values_problem(data: dict) -> str | None:
    """Why ``data`` is not ``{"<index>": [chosen, rejected], ...}`` of numbers (None if it is)."""
    for k, v in data.items():
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
            return f"value of pair {k} is {str(v)[:40]}, not [chosen, rejected]"
    return None


def read_reference_logps(path: Path, examples: Sequence[dict]) -> dict[int, tuple[float, float]]:
    """The verified cache file (:func:`prefexp.cachefs.read_checked_json`: checksum, one entry per
    example); raises :class:`prefexp.cachefs.CacheCorrupt` otherwise."""
    data = read_checked_json(path, keys=[str(e["index"]) for e in examples], check=pair_values_problem)
    return {int(k): tuple(v) for k, v in data.items()}


def cached_reference_logps(model_loader, model_dir: str, examples: Sequence[dict], pad_token_id: int,
                           batch_size: int, cache_dir: Path, precision: str = "fp32") -> dict[int, tuple[float, float]]:
    """Load from ``cache_dir`` or compute with ``model_loader()`` and store.

    Concurrent cold runs with the same key compute once: the others wait on the entry's lock and
    then read the file (``prefexp.cachefs.build_once``). A file that fails its check (edited,
    truncated, a pair missing) is moved aside and recomputed (``prefexp.cachefs.cached_json``)."""
    path = reference_cache_path(model_dir, examples, cache_dir, precision)

    def compute() -> dict[str, list[float]]:
        values = compute_reference_logps(model_loader(), examples, pad_token_id, batch_size, precision)
        return {str(k): list(v) for k, v in values.items()}

    data, built = cached_json(path, compute, what="reference log-probs", keys=[str(e["index"]) for e in examples],
                              check=pair_values_problem)
    log.info("reference log-probs: %s %s", f"computed {len(data)} pairs, cached at" if built else "cache hit", path)
    return {int(k): tuple(v) for k, v in data.items()}
