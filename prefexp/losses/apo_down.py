"""APO-down (D'Oosterlinck et al. 2024, "Anchored preference optimization and contrastive
revisions", arXiv 2408.06266, eq. 8); TRL ``loss_type="apo_down"``.

    lr_c = logp_c - ref_c,  h = lr_c - (logp_r - ref_r)                   [B]
    L    = sigma(beta * lr_c) + (1 - sigma(beta * h))                     [B]

Pushes both likelihoods down, the rejected more. Use it when the model is already better than
the chosen responses.

Hyperparameters:
    beta: in (0, inf), default 0.1 (TRL).
Departures from TRL 1.16: none.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require
from .dpo import PAIR_INPUTS


class APODownLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1):
        check_range("beta", beta, 0, low_open=True)
        self.beta = beta

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="apo_down")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        losses = torch.sigmoid(self.beta * lr_c) + (1 - torch.sigmoid(self.beta * (lr_c - lr_r)))
        return LossOutput(
            losses=losses,
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
        )
