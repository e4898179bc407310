"""Smooth MaxNeg-MinPos: RoseRAG's hardest-pair objective (arXiv 2502.10993) with the seed
blog's log-sum-exp smoothing, as corrected in methods.md 3.6.

    SmoothMax_t(a) =  (1/t) log sum_j exp(t a_j)      >= max(a),  error <= log(n)/t
    SmoothMin_t(a) = -(1/t) log sum_i exp(-t a_i)     <= min(a),  error <= log(n)/t
    gap_t = SmoothMin_t(a+) - SmoothMax_t(a-)          <= hard gap; -> hard gap as t -> inf  [B]
    L     = softplus(-beta gap_t)                                                           [B]

Scores, inputs, masks, the pair fallback and the row check are those of maxneg_minpos.py;
masked entries enter the log-sum-exp as -inf (never NaN). Unlike the hard form, every valid
response gets gradient (a softmax share; 1 - softmax(t a)_max reaches non-extremal ones).

Corrections to the blog (do not copy it literally): (1) its "smooth MinPos" subtracts a smooth
MAX of the positives; we use SmoothMin. (2) its error term has exp(-t d_i) with d_i <= 0; the
term is exp(t d_i) = exp(-t |d_i|). (3) the smoothed max is ABOVE the max; the exact error
(1/t) log(1 + sum_{i != top} exp(-t (A_top - A_i))) lies in [0, log(1 + (n-1) e^{-t delta}) / t]
<= log(n)/t, delta the top-two gap (``lse_error_bound``). (4) its temperature inequality is
heuristic; pick t with log(n)/t <= the tolerated bias (``min_temperature``). The buggy form
SmoothMax(neg) - SmoothMax(pos) is pinned by a regression test.

Hyperparameters:
    beta: in (0, inf), default 1.0;  use_reference: default false (see maxneg_minpos.py).
    t: temperature, in (0, inf), default 10 (error <= 0.139 nats at n = 4; t = 1 behaves like a mean).
    max_bias: optional, in (0, inf); if set, each call checks t >= log(K) / max_bias, K the group
        size (bounds the bias of each of SmoothMin and SmoothMax; the gap's by twice that).
Rewards: SmoothMin(a+) (chosen) and SmoothMax(a-) (rejected), detached. Not in TRL.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import check_range
from .maxneg_minpos import MaxNegMinPosLoss


def smooth_max(scores: Tensor, mask: Tensor, t: float) -> Tensor:
    """(1/t) logsumexp(t a) over the masked entries of each row [B, K] -> [B]."""
    return torch.logsumexp((t * scores).masked_fill(~mask, float("-inf")), dim=1) / t


def smooth_min(scores: Tensor, mask: Tensor, t: float) -> Tensor:
    """-(1/t) logsumexp(-t a) over the masked entries of each row [B, K] -> [B]."""
    return -smooth_max(-scores, mask, t)


def lse_error_bound(n: int, t: float, delta: float | None = None) -> float:
    """Upper bound on SmoothMax_t - max over n entries: log(n)/t, or the tighter
    log(1 + (n-1) exp(-t delta))/t when the top-two gap delta >= 0 is known."""
    if delta is None:
        return math.log(n) / t
    return math.log1p((n - 1) * math.exp(-t * delta)) / t


def min_temperature(n: int, max_bias: float) -> float:
    """Smallest t whose log-sum-exp bias over n entries is at most max_bias: log(n) / max_bias."""
    return math.log(n) / max_bias


class SmoothMaxNegMinPosLoss(MaxNegMinPosLoss):
    name = "smooth_maxneg_minpos"

    def __init__(self, beta: float = 1.0, t: float = 10.0, max_bias: float | None = None,
                 use_reference: bool = False):
        super().__init__(beta=beta, use_reference=use_reference)
        check_range("t", t, 0, low_open=True)
        if max_bias is not None:
            check_range("max_bias", max_bias, 0, low_open=True)
        self.t, self.max_bias = t, max_bias

    def select(self, scores: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
        if self.max_bias is not None:
            k = scores.shape[1]
            t_min = min_temperature(k, self.max_bias)
            if self.t < t_min:
                raise ValueError(f"loss.t={self.t} is below log(K)/max_bias = {t_min:.4g} for K={k} "
                                 f"responses and loss.max_bias={self.max_bias}; raise t or max_bias")
        return smooth_min(scores, positive, self.t), smooth_max(scores, negative, self.t)
