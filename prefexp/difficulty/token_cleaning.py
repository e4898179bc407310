"""Token Cleaning (Pang et al., ICML 2025, arXiv 2502.01968; official code UCSC-REAL/TokenCleaning).

Every response token of the chosen (SFT target) response gets an influence score, the loss drop
from a base model theta to a reference model theta' (methods.md 3.2):

    score_{i,t} = NLL_theta(x_t | x_<t) - NLL_theta'(x_t | x_<t) = log p_theta'(x_t|.) - log p_theta(x_t|.)

High = theta' learned this token, so it is informative. The top ``keep_fraction`` (k, default 0.6)
of tokens are kept and the SFT term is taken over kept tokens only:

    global (default): top floor(N_tokens * k) over the whole dataset (the paper's difference from RHO-1)
    sample:           top floor(n_i * k) within each sample

This module is the maths only (scores -> kept tokens -> masked NLL); scoring the tokens with two
models and placing the masks in a batch is the engine's job (``prefexp.engine.token_masks``).

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

import math
from typing import Sequence

import torch
from torch import Tensor

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


def masks_from_scores(scores: dict[int, Tensor], keep_fraction: float = 0.6,
                      level: str = "global") -> dict[int, list[int]]:
    """Select on per-example scores; sample order for the tie-break = ascending example index."""
    indices = sorted(scores)
    keep = select_tokens([scores[i] for i in indices], keep_fraction, level)
    return {i: k.int().tolist() for i, k in zip(indices, keep)}
