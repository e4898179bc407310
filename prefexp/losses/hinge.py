"""Hinge loss (SLiC-HF, Zhao et al. 2023, arXiv 2305.10425, as adapted by RSO, Liu et al. 2023,
arXiv 2309.06657); TRL ``loss_type="hinge"``.

    h = (logp_c - ref_c) - (logp_r - ref_r)                  [B]
    L = max(0, 1 - beta * h)                                 [B]

Imposes a margin of 1/beta nats of h; the gradient is exactly zero once it is met.

Hyperparameters:
    beta: reciprocal of the margin, in (0, inf), default 0.1 (margin 10).
Departures from TRL 1.16: none.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require
from .dpo import PAIR_INPUTS


class HingeLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1):
        check_range("beta", beta, 0, low_open=True)
        self.beta = beta

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="hinge")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        slack = 1 - self.beta * (lr_c - lr_r)  # [B]; > 0 = the pair still gets gradient
        return LossOutput(
            losses=torch.relu(slack),
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
            metrics={"hinge/active_fraction": (slack > 0).float().mean().detach()},
        )
