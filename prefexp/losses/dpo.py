"""DPO (Rafailov et al. 2023, arXiv 2305.18290), sigmoid form; TRL ``loss_type="sigmoid"``.

    h = (logp_c - ref_c) - (logp_r - ref_r)                  [B]
    L = -log sigma(beta * h) = softplus(-beta * h)           [B]

Hyperparameters:
    beta: inverse temperature of the implicit reward, in (0, inf). Default 0.1 (paper and TRL);
          the Zephyr / MixDPO recipe uses 0.01.
Implicit rewards: ``beta * (logp - ref)``, detached (TRL's ``rewards/*``).
Departures from TRL 1.16: none (label smoothing lives in ``cdpo``/``robust``, as in TRL >= 0.29).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require

PAIR_INPUTS = ("policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps",
               "reference_rejected_logps")


def dpo_losses(h: Tensor, beta: float) -> Tensor:
    """Per-example DPO loss [B] from the log-ratio margin h [B]."""
    return F.softplus(-beta * h)


class DPOLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1):
        check_range("beta", beta, 0, low_open=True)
        self.beta = beta

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="dpo")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        return LossOutput(
            losses=dpo_losses(lr_c - lr_r, self.beta),
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
        )
