"""Token Cleaning's model side: score each chosen token with two models and cache the scores (the
masks reach a batch through ``batching.scatter_token_mask``). The selection maths lives in
``prefexp.difficulty.token_cleaning`` (no model, no engine import).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..difficulty.token_cleaning import masks_from_scores
from .batching import token_row
from .logps import token_logps
from .reference import examples_fingerprint, weights_fingerprint

log = logging.getLogger(__name__)


@torch.no_grad()
def chosen_token_logps(model, examples: Sequence[dict], pad_token_id: int, batch_size: int) -> dict[int, Tensor]:
    """``{index: [len(chosen_ids)] float32}``: log-prob of each chosen response token given its prefix."""
    model.eval()
    device = next(model.parameters()).device
    out: dict[int, Tensor] = {}
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["prompt_ids"]) + len(examples[i]["chosen_ids"]))
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start: start + batch_size]]
        rows = [token_row(e["prompt_ids"], e["chosen_ids"]) for e in chunk]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # [B, T]
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [B, T]
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = row
            attention_mask[i, :len(row)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False).logits
        lp = token_logps(logits, input_ids.to(device)).cpu()  # [B, T-1]; column j = token j+1
        for i, e in enumerate(chunk):
            start_tok, n = len(e["prompt_ids"]), len(e["chosen_ids"])
            values = lp[i, max(start_tok, 1) - 1: start_tok + n - 1]
            if start_tok == 0 and n:  # no context for the first token: log-prob 0 by convention
                values = torch.cat([torch.zeros(1), values])
            out[e["index"]] = values.float().clone()
    return out


def response_token_scores(base_model, reference_model, examples: Sequence[dict], pad_token_id: int,
                          batch_size: int) -> dict[int, Tensor]:
    """``{index: scores [len(chosen_ids)]}`` = log p_ref - log p_base per chosen response token."""
    base = chosen_token_logps(base_model, examples, pad_token_id, batch_size)
    ref = chosen_token_logps(reference_model, examples, pad_token_id, batch_size)
    return {i: ref[i] - base[i] for i in base}


def clean_token_masks(base_model, reference_model, examples: Sequence[dict], pad_token_id: int, batch_size: int,
                      keep_fraction: float = 0.6, level: str = "global") -> dict[int, list[int]]:
    """``{example index: [0/1 per chosen response token]}``, 1 = kept for the SFT term.

    ``examples`` are ``tokenize_pairs`` dicts (``index``, ``prompt_ids``, ``chosen_ids``); the base
    model is theta (e.g. the pretrained model), the reference theta' (e.g. the SFT model). No cache:
    see :func:`cached_clean_token_masks`.
    """
    scores = response_token_scores(base_model, reference_model, examples, pad_token_id, batch_size)
    return masks_from_scores(scores, keep_fraction, level)


def _scores_key(base_dir: str, reference_dir: str, examples: Sequence[dict], cache_dir: Path) -> str:
    blob = (f"{weights_fingerprint(base_dir, cache_dir)}-{weights_fingerprint(reference_dir, cache_dir)}-"
            f"{examples_fingerprint(examples)}")
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_token_scores(base_loader: Callable[[], object], base_dir: str, reference_loader: Callable[[], object],
                        reference_dir: str, examples: Sequence[dict], pad_token_id: int, batch_size: int,
                        cache_dir: Path) -> dict[int, Tensor]:
    """Token scores from ``<cache_dir>/token_scores/<key>.pt`` or computed (one model loaded at a time).

    key = sha256 of (base weights fingerprint, reference weights fingerprint, token ids). The file
    holds ``index`` [N], ``offsets`` [N+1] and ``scores`` [sum n_i] (float32), loaded weights_only.
    """
    path = Path(cache_dir) / "token_scores" / f"{_scores_key(base_dir, reference_dir, examples, cache_dir)}.pt"
    if path.is_file():
        log.info("token scores: cache hit %s", path)
        blob = torch.load(path, weights_only=True)
        offsets = blob["offsets"].tolist()
        return {int(i): blob["scores"][offsets[k]: offsets[k + 1]].clone()
                for k, i in enumerate(blob["index"].tolist())}
    model = base_loader()
    base = chosen_token_logps(model, examples, pad_token_id, batch_size)
    del model
    model = reference_loader()
    ref = chosen_token_logps(model, examples, pad_token_id, batch_size)
    del model
    scores = {i: ref[i] - base[i] for i in sorted(base)}
    lengths = [len(v) for v in scores.values()]
    offsets = torch.tensor([0, *torch.tensor(lengths, dtype=torch.long).cumsum(0).tolist()], dtype=torch.long)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"index": torch.tensor(list(scores), dtype=torch.long), "offsets": offsets,
                "scores": torch.cat(list(scores.values())) if scores else torch.zeros(0)}, tmp)
    tmp.replace(path)  # atomic: an interrupted run never leaves a half cache
    log.info("token scores: %d examples, %d tokens, cached at %s", len(scores), sum(lengths), path)
    return scores


def cached_clean_token_masks(base_loader: Callable[[], object], base_dir: str, reference_loader: Callable[[], object],
                             reference_dir: str, examples: Sequence[dict], pad_token_id: int, batch_size: int,
                             keep_fraction: float, level: str, cache_dir: Path) -> dict[int, list[int]]:
    """:func:`clean_token_masks` with the scores cached on disk (the pattern of ``cached_reference_logps``)."""
    scores = cached_token_scores(base_loader, base_dir, reference_loader, reference_dir, examples, pad_token_id,
                                 batch_size, cache_dir)
    return masks_from_scores(scores, keep_fraction, level)
