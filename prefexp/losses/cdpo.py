"""cDPO: conservative DPO with label smoothing (Mitchell 2023, "A note on DPO with noisy
preferences"); TRL <= v0.28 ``loss_type="sigmoid"`` with ``label_smoothing > 0``.

    h = (logp_c - ref_c) - (logp_r - ref_r)                              [B]
    L = (1 - eps) * softplus(-beta * h) + eps * softplus(beta * h)       [B]

The labels are assumed flipped with probability eps; the minimum over h sits at the finite
beta * h = log((1 - eps) / eps).

Hyperparameters:
    beta: in (0, inf), default 0.1.
    label_smoothing (eps): flip probability, in [0, 0.5), default 0.1. eps = 0 is DPO.
Departure from TRL 1.16: none possible to test, since TRL >= 0.29 ignores label smoothing for
``sigmoid``; the formula is TRL 0.28's.
"""
from __future__ import annotations

from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require, smoothed_logistic
from .dpo import PAIR_INPUTS


class CDPOLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.1):
        check_range("beta", beta, 0, low_open=True)
        check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
        self.beta, self.label_smoothing = beta, label_smoothing

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="cdpo")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        return LossOutput(
            losses=smoothed_logistic(self.beta * (lr_c - lr_r), self.label_smoothing),
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
        )
