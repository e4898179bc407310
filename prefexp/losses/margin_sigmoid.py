"""Adaptive Margin-Sigmoid loss, Margin-sigma (Yao, Yuan, Chen 2025, arXiv 2508.08466; the
authors' report, eq. L_margin-sigma).

    h  = (logp_c - ref_c) - (logp_r - ref_r)                                 [B]
    l+ = softplus(-beta h),   l- = softplus(beta h)                          [B]
    L  = (1 - eps) max(0, l+ - delta) + eps max(0, l- - delta)               [B]

DPO's log-sigmoid with a hinge-style dead zone: the gradient stops once a side's loss is below
delta. Despite the name, delta is fixed.

Hyperparameters:
    beta: in (0, inf), default 0.1 (report).
    delta: in [0, ln 2), default softplus(-1) = 0.313262 (not given in the report; this value
        starts the dead zone at beta h >= 1, where TRL's hinge stops). delta >= ln 2 would make
        the loss 0 at initialisation. delta = 0 gives cDPO.
    label_smoothing (eps): in [0, 0.5), default 0 (the report's "small" value is not given).
Rewards: ``beta * (logp - ref)``, detached. Not in TRL.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require
from .dpo import PAIR_INPUTS

SOFTPLUS_MINUS_1 = math.log1p(math.exp(-1.0))


class MarginSigmoidLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1, delta: float = SOFTPLUS_MINUS_1, label_smoothing: float = 0.0):
        check_range("beta", beta, 0, low_open=True)
        check_range("delta", delta, 0, math.log(2), high_open=True)
        check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
        self.beta, self.delta, self.label_smoothing = beta, delta, label_smoothing

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="margin_sigmoid")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        x, eps = self.beta * (lr_c - lr_r), self.label_smoothing
        losses = (1 - eps) * torch.relu(F.softplus(-x) - self.delta)
        if eps:
            losses = losses + eps * torch.relu(F.softplus(x) - self.delta)
        return LossOutput(
            losses=losses,
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
            metrics={"margin_sigmoid/active_fraction": (losses.detach() > 0).float().mean()},
        )
