"""Robust DPO, rDPO (Chowdhury et al. 2024, "Provably robust DPO", arXiv 2403.00409);
TRL ``loss_type="robust"``.

    h = (logp_c - ref_c) - (logp_r - ref_r)                                      [B]
    L = [(1 - eps) * softplus(-beta * h) - eps * softplus(beta * h)] / (1 - 2 eps)   [B]

An unbiased estimate of the clean DPO loss when labels flip with known probability eps. The loss
is unbounded below: it turns negative once (1-eps) sp(-beta h) < eps sp(beta h), i.e. for
beta * h > 1.545760 at eps = 0.1. This is the method, not a bug, and it is not clamped.

Hyperparameters:
    beta: in (0, inf), default 0.1.
    label_smoothing (eps): in [0, 0.5) (TRL validates the same range), default 0.1.
Departures from TRL 1.16: none.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require
from .dpo import PAIR_INPUTS


class RobustDPOLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.1):
        check_range("beta", beta, 0, low_open=True)
        check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
        self.beta, self.label_smoothing = beta, label_smoothing

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="robust")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        x, eps = self.beta * (lr_c - lr_r), self.label_smoothing
        losses = ((1 - eps) * F.softplus(-x) - eps * F.softplus(x)) / (1 - 2 * eps)
        return LossOutput(
            losses=losses,
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
        )
