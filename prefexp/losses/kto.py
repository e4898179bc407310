"""KTO, paired form (Ethayarajh et al. 2024, "KTO: Model alignment as prospect theoretic
optimization", arXiv 2402.01306, eq. 7); TRL KTOTrainer ``loss_type="kto"``.

Each pair gives one desirable (chosen) and one undesirable (rejected) example:

    desirable_b   = lambda_D * (1 - sigma(beta * (lr_c,b - z0)))                [B]
    undesirable_b = lambda_U * (1 - sigma(beta * (z0 - lr_r,b)))                [B]
    L_b           = (desirable_b + undesirable_b) / 2                           [B]

so that ``mean_b L_b`` is TRL's mean over the concatenation of both lists (2B terms).

z0 is the KL baseline, input ``kl_baseline`` (scalar tensor): TRL estimates it as
``max(0, mean(logp(y'|x) - ref(y'|x)))`` over mismatched prompt/completion pairs, gathered over
ranks; that extra forward pass belongs to the trainer. We detach it and clamp it at 0 (a no-op on
TRL's value). If ``kl_baseline`` is absent, z0 = 0: the baseline is dropped, which is TRL's
``apo_zero_unpaired`` up to the 1/2 and the weights; documented, not an error, so that the loss
runs on plain pairs.

Hyperparameters:
    beta: in (0, inf), default 0.1.
    desirable_weight (lambda_D), undesirable_weight (lambda_U): in (0, inf), default 1.0.
      TRL warns unless lambda_D n_D / (lambda_U n_U) is in [1, 4/3]; with pairs n_D = n_U.
Rewards: ``beta * (logp - ref)``, detached. Metric ``kto/kl`` = z0.
Departures from TRL 1.16: paired data only (n_D = n_U = B); z0 is an input, not computed here.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, log_ratios, require
from .dpo import PAIR_INPUTS


class KTOLoss(PreferenceLoss):
    needs_reference = True

    def __init__(self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
        check_range("beta", beta, 0, low_open=True)
        check_range("desirable_weight", desirable_weight, 0, low_open=True)
        check_range("undesirable_weight", undesirable_weight, 0, low_open=True)
        self.beta, self.desirable_weight, self.undesirable_weight = beta, desirable_weight, undesirable_weight

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="kto")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        z0 = inputs.get("kl_baseline")
        z0 = torch.zeros((), dtype=lr_c.dtype, device=lr_c.device) if z0 is None else \
            torch.as_tensor(z0, dtype=lr_c.dtype, device=lr_c.device).detach().clamp(min=0).reshape(())
        desirable = self.desirable_weight * (1 - torch.sigmoid(self.beta * (lr_c - z0)))  # [B]
        undesirable = self.undesirable_weight * (1 - torch.sigmoid(self.beta * (z0 - lr_r)))  # [B]
        return LossOutput(
            losses=(desirable + undesirable) / 2,
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
            metrics={"kto/kl": z0},
        )
