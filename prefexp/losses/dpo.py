"""DPO (Rafailov et al. 2023), sigmoid form; TRL ``loss_type="sigmoid"``.

    h = (logp_c - ref_c) - (logp_r - ref_r)
    L = -log sigma(beta * h) = softplus(-beta * h)

beta: inverse temperature, > 0 (default 0.1; the Zephyr / MixDPO recipe uses 0.01).
Implicit rewards: beta * (logp - ref), detached.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import LossOutput, PreferenceLoss, require


def dpo_losses(h: Tensor, beta: float) -> Tensor:
    """Per-example DPO loss [B] from the log-ratio margin h [B]."""
    return F.softplus(-beta * h)


class DPOLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1):
        if not beta > 0:
            raise ValueError(f"loss.beta={beta} must be > 0")
        self.beta = beta

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps",
                "reference_rejected_logps", loss="dpo")
        lr_c = inputs["policy_chosen_logps"] - inputs["reference_chosen_logps"]  # [B]
        lr_r = inputs["policy_rejected_logps"] - inputs["reference_rejected_logps"]  # [B]
        return LossOutput(
            losses=dpo_losses(lr_c - lr_r, self.beta),
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
        )
