"""Token Cleaning (Pang et al., ICML 2025, arXiv 2502.01968; official code UCSC-REAL/TokenCleaning).

Every response token of the chosen (SFT target) response gets an influence score, the loss drop
from a base model theta to a reference model theta' (methods.md 3.2):

    score_{i,t} = NLL_theta(x_t | x_<t) - NLL_theta'(x_t | x_<t) = log p_theta'(x_t|.) - log p_theta(x_t|.)

High = theta' learned this token, so it is informative. The top ``keep_fraction`` (k, default 0.6)
of tokens are kept and the SFT term is taken over kept tokens only:

    global (default): top floor(N_tokens * k) over the whole dataset (the paper's difference from RHO-1)
    sample:           top floor(n_i * k) within each sample

Deliberate choices, not fixed by the paper or code:
* Ties are broken deterministically: among equal scores the **earlier token position** wins, then
  the **lower sample index** (samples ordered by ``example["index"]``, the original row). With
  identical models every score is 0 and global selection keeps, for increasing position t, the
  t-th token of every sample that has one, until the budget is spent; sample-level keeps each
  sample's first floor(n_i * k) tokens.
* floor(n * k) is computed as ``floor(n * k + 1e-9)`` so that float products such as 0.57 * 100 =
  56.99999999999999 round to the intended 57.
* A response token with no left context (empty prompt: position 0) has no prediction; its
  log-probs are taken as 0 under both models, so its score is 0 (the official code's label shift
  gives it loss 0 too).
* Scores are cached per (base weights, reference weights, token ids), not the masks: a sweep over
  ``keep_fraction`` or ``level`` reuses one scoring pass.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..engine.logps import token_logps
from ..engine.reference import examples_fingerprint, weights_fingerprint

log = logging.getLogger(__name__)

LEVELS = ("global", "sample")
_EPS = 1e-9


def token_scores(base_token_logps: Tensor, ref_token_logps: Tensor, mask: Tensor) -> Tensor:
    """Per-token influence scores [N, T]: ``ref - base`` log-probs where ``mask`` is set, 0 elsewhere.

    Args:
        base_token_logps: log p_theta of each token under the base model, [N, T].
        ref_token_logps: log p_theta' under the reference (updated) model, [N, T].
        mask: bool or 0/1 [N, T], True on response tokens (prompt and padding are never candidates).
    """
    diff = ref_token_logps.float() - base_token_logps.float()  # [N, T] = NLL_base - NLL_ref
    return torch.where(mask.bool(), diff, torch.zeros_like(diff))  # [N, T]


def _budget(n: int, keep_fraction: float) -> int:
    return min(n, math.floor(n * keep_fraction + _EPS))


def select_tokens(scores: Sequence[Tensor], keep_fraction: float = 0.6, level: str = "global") -> list[Tensor]:
    """Keep masks (bool, same shapes as ``scores``) of the top-scoring tokens.

    Args:
        scores: one 1-D tensor per sample, its response tokens' scores in order; sample i of the
            list is "sample index i" for the tie-break.
        keep_fraction: k in [0, 1]; 1.0 keeps every token (cleaned SFT == standard SFT).
        level: "global" (top floor(N_total * k) over all samples) or "sample" (top floor(n_i * k)
            within each sample).

    Ties: earlier token position first, then lower sample index (see the module docstring).
    """
    if not 0 <= keep_fraction <= 1:
        raise ValueError(f"keep_fraction={keep_fraction} must be in [0, 1]")
    if level not in LEVELS:
        raise ValueError(f"level={level!r} must be one of {list(LEVELS)}")
    flat = [s.detach().reshape(-1).double().cpu() for s in scores]
    if any(not torch.isfinite(s).all() for s in flat):
        raise ValueError("token scores must be finite")
    if level == "sample":
        return [_top_mask(s, torch.arange(len(s)), torch.zeros(len(s), dtype=torch.long),
                          _budget(len(s), keep_fraction)) for s in flat]
    lengths = [len(s) for s in flat]
    values = torch.cat(flat) if flat else torch.zeros(0, dtype=torch.float64)  # [N_total]
    positions = torch.cat([torch.arange(n) for n in lengths]) if flat else torch.zeros(0, dtype=torch.long)
    samples = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(lengths)]) if flat \
        else torch.zeros(0, dtype=torch.long)
    keep = _top_mask(values, positions, samples, _budget(len(values), keep_fraction))  # [N_total]
    return [part.reshape(s.shape) for part, s in zip(torch.split(keep, lengths), scores)]


def _top_mask(values: Tensor, positions: Tensor, samples: Tensor, budget: int) -> Tensor:
    """Bool mask of the ``budget`` best entries: by score desc, then position asc, then sample asc."""
    order = torch.arange(len(values))
    for key in (samples, positions, -values):  # stable sorts, least significant key first
        order = order[torch.sort(key[order], stable=True).indices]
    keep = torch.zeros(len(values), dtype=torch.bool)
    keep[order[:budget]] = True
    return keep


def masked_token_nll(token_logps: Tensor, mask: Tensor, reduction: str = "sequence") -> Tensor:
    """NLL over kept tokens only.

    Args:
        token_logps: [B, T] log-probs of the target tokens under the trained model.
        mask: [B, T] 0/1 keep mask (0 also on prompt and padding).
        reduction: "sequence": [B] per-sequence mean over kept tokens, ``-sum_t m*lp / max(1, sum_t m)``
            (MixDPO's SFT branch with ``chosen_token_mask``); "token": scalar batch token-mean
            ``-sum m*lp / sum m`` (the official Token Cleaning loss, HF's -100 labels).
    """
    m = mask.to(token_logps.dtype)  # [B, T]
    if reduction == "sequence":
        return -(token_logps * m).sum(-1) / m.sum(-1).clamp(min=1)  # [B]
    if reduction == "token":
        return -(token_logps * m).sum() / m.sum().clamp(min=1)  # []
    raise ValueError(f"reduction={reduction!r} must be 'sequence' or 'token'")


def scatter_token_mask(keep: Sequence[Sequence[int]], response_mask: Tensor) -> Tensor:
    """Place per-example keep flags into the layout of ``token_logps(logits, input_ids)`` ([B, T-1]).

    Args:
        keep: per example, one 0/1 per chosen response token (``clean_token_masks`` values).
        response_mask: [B, T] bool, True on the chosen response tokens (the chosen half of a
            ``PairCollator`` batch: ``batch["response_mask"][:B]``).
    Returns a float [B, T-1] mask aligned with ``token_logps(...)[:B]``: pass it as
    ``chosen_token_mask`` together with those log-probs as ``chosen_token_logps``.
    """
    targets = response_mask[:, 1:].bool()  # [B, T-1]; column j scores token j+1
    out = torch.zeros(targets.shape, dtype=torch.float32)
    for b, flags in enumerate(keep):
        cols = targets[b].nonzero().squeeze(-1)
        if len(flags) < len(cols):
            raise ValueError(f"example {b}: {len(flags)} keep flags for {len(cols)} response tokens")
        out[b, cols] = torch.tensor(list(flags)[len(flags) - len(cols):], dtype=torch.float32)
    return out.to(response_mask.device)


@torch.no_grad()
def chosen_token_logps(model, examples: Sequence[dict], pad_token_id: int, batch_size: int) -> dict[int, Tensor]:
    """``{index: [len(chosen_ids)] float32}``: log-prob of each chosen response token given its prefix."""
    model.eval()
    device = next(model.parameters()).device
    out: dict[int, Tensor] = {}
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["prompt_ids"]) + len(examples[i]["chosen_ids"]))
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start: start + batch_size]]
        rows = [e["prompt_ids"] + e["chosen_ids"] for e in chunk]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # [B, T]
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [B, T]
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = torch.tensor(row)
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


def masks_from_scores(scores: dict[int, Tensor], keep_fraction: float = 0.6,
                      level: str = "global") -> dict[int, list[int]]:
    """Select on per-example scores; sample order for the tie-break = ascending example index."""
    indices = sorted(scores)
    keep = select_tokens([scores[i] for i in indices], keep_fraction, level)
    return {i: k.int().tolist() for i, k in zip(indices, keep)}


def clean_token_masks(base_model, reference_model, examples: Sequence[dict], pad_token_id: int, batch_size: int,
                      keep_fraction: float = 0.6, level: str = "global") -> dict[int, list[int]]:
    """``{example index: [0/1 per chosen response token]}``, 1 = kept for the SFT term.

    ``examples`` are ``tokenize_pairs`` dicts (``index``, ``prompt_ids``, ``chosen_ids``); the base
    model is theta (e.g. the pretrained model), the reference theta' (e.g. the SFT model). No cache:
    see :func:`cached_clean_token_masks`.
    """
    scores = response_token_scores(base_model, reference_model, examples, pad_token_id, batch_size)
    return masks_from_scores(scores, keep_fraction, level)


def _scores_key(base_dir: str, reference_dir: str, examples: Sequence[dict]) -> str:
    blob = f"{weights_fingerprint(base_dir)}-{weights_fingerprint(reference_dir)}-{examples_fingerprint(examples)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_token_scores(base_loader: Callable[[], object], base_dir: str, reference_loader: Callable[[], object],
                        reference_dir: str, examples: Sequence[dict], pad_token_id: int, batch_size: int,
                        cache_dir: Path) -> dict[int, Tensor]:
    """Token scores from ``<cache_dir>/token_scores/<key>.pt`` or computed (one model loaded at a time).

    key = sha256 of (base weights fingerprint, reference weights fingerprint, token ids). The file
    holds ``index`` [N], ``offsets`` [N+1] and ``scores`` [sum n_i] (float32), loaded weights_only.
    """
    path = Path(cache_dir) / "token_scores" / f"{_scores_key(base_dir, reference_dir, examples)}.pt"
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
