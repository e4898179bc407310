"""APO-hinge-zero (Yao, Yuan, Chen 2025, arXiv 2508.08466; the authors' report, eq. 11).

    lr_c = logp_c - ref_c,  lr_r = logp_r - ref_r                              [B]
    L    = max(0, m - b lr_c) + max(0, m + b lr_r)                              [B]

APO-zero's anchored directions (chosen up, rejected down, independently) with a hinge instead of
the logistic: a response gets exactly zero gradient once b lr_c >= m (chosen) or b lr_r <= -m
(rejected). While both hinges are active the loss is 2m - b h, shift-invariant; it is not once
one of them is inactive.

Hyperparameters:
    beta: in (0, inf), default 0.1;  m: margin in [0, inf), default 1.
    beta_squared: default false, b = beta. The report defines r = beta log(pi/pi_ref) and then
        writes beta * r in eq. 11, literally b = beta^2; true reproduces that literal reading.
        The text ("the gradient stops when |r| >= m / beta") and methods.md 3.5 favour a single beta.
Rewards: ``b * (logp - ref)``, detached. Not in TRL.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require
from .dpo import PAIR_INPUTS


class APOHingeZeroLoss(PreferenceLoss):
    needs_reference = True
    name = "apo_hinge_zero"

    def __init__(self, beta: float = 0.1, m: float = 1.0, beta_squared: bool = False):
        check_range("beta", beta, 0, low_open=True)
        check_range("m", m, 0)
        self.beta, self.m, self.beta_squared = beta, m, bool(beta_squared)
        self.scale = beta * beta if self.beta_squared else beta

    def side_losses(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        """Per-example loss [B] from the scaled log-ratios b lr_c, b lr_r [B]."""
        return torch.relu(self.m - chosen) + torch.relu(self.m + rejected)

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss=self.name)
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        chosen, rejected = self.scale * lr_c, self.scale * lr_r
        active_c, active_r = chosen.detach() < self.m, rejected.detach() > -self.m  # [B] hinge still open
        return LossOutput(
            losses=self.side_losses(chosen, rejected),
            chosen_rewards=chosen.detach(),
            rejected_rewards=rejected.detach(),
            metrics={f"{self.name}/active_fraction": (active_c | active_r).float().mean(),
                     f"{self.name}/active_chosen": active_c.float().mean(),
                     f"{self.name}/active_rejected": active_r.float().mean()},
        )
