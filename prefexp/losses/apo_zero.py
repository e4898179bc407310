"""APO-zero (D'Oosterlinck et al. 2024, "Anchored preference optimization and contrastive
revisions", arXiv 2408.06266, eq. 7); TRL ``loss_type="apo_zero"``.

    lr_c = logp_c - ref_c,  lr_r = logp_r - ref_r                         [B]
    L    = (1 - sigma(beta * lr_c)) + sigma(beta * lr_r)                  [B]

Anchored: pushes the chosen likelihood up and the rejected one down, independently. Use it when
the chosen responses are better than the model's own outputs.

Hyperparameters:
    beta: in (0, inf), default 0.1 (TRL).
Departures from TRL 1.16: none.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require
from .dpo import PAIR_INPUTS


class APOZeroLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1):
        check_range("beta", beta, 0, low_open=True)
        self.beta = beta

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="apo_zero")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        losses = (1 - torch.sigmoid(self.beta * lr_c)) + torch.sigmoid(self.beta * lr_r)
        return LossOutput(
            losses=losses,
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
        )
