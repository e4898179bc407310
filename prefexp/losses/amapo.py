"""AMaPO (Deng et al., AAAI 2026, "Adaptive margin-attached preference optimization"); official
code ``Shiroha-Offical/AMaPO`` (``amapo_trainer.py: amapo_loss``, ``length_norm=True``).

Reference-free, SimPO-style, with an exponential extra margin on pairs ranked below the batch:

    x_i   = u_c,i - u_r,i,  u = logp / len                                       [B]
    m, s  = mean(X), std(X) over the batch gathered across ranks, detached (unbiased std)
    g_i   = sg[beta * exp(((m - x_i) / max(s, eps)) * m)]  if x_i < m, else 0   [B]
    L_i   = softplus(-(beta * x_i - g_i))                                        [B]

The exponent multiplies the z-score by the batch mean m, as the code does; whether the paper's
equation has the same form could not be verified (methods.md 5.2).

Hyperparameters:
    beta: in (0, inf), default 2.0 (README, Mistral-Base; 2.0-3.0 across settings). No gamma and
          no label smoothing, as the official code.
    eps: std floor, in (0, inf), default 1e-6 (an all-equal batch has s = 0).
Rewards: ``beta * u``, detached.
Departures from the official code: the std floor, and the exponent is clamped at 80 so the
margin stays finite in float32 (no effect at realistic scales). Not in TRL.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import (LossOutput, PreferenceLoss, batch_std, check_range, gather_across_ranks,
                   lengths_like, require)

MAX_EXPONENT = 80.0


def amapo_margins(x: Tensor, batch: Tensor, beta: float, eps: float = 1e-6) -> Tensor:
    """Detached margins g [B] for x [B] given the (gathered) batch of x [N]."""
    x, batch = x.detach(), batch.detach()
    m, s = batch.mean(), batch_std(batch).clamp(min=eps)
    exponent = (((m - x) / s) * m).clamp(max=MAX_EXPONENT)
    return torch.where(x < m, beta * torch.exp(exponent), torch.zeros_like(x))


def amapo_losses(x: Tensor, batch: Tensor, beta: float, eps: float = 1e-6) -> Tensor:
    """Per-example AMaPO loss [B]."""
    return F.softplus(-(beta * x - amapo_margins(x, batch, beta, eps)))


class AMaPOLoss(PreferenceLoss):
    needs_reference = False
    needs_lengths = True

    def __init__(self, beta: float = 2.0, eps: float = 1e-6):
        check_range("beta", beta, 0, low_open=True)
        check_range("eps", eps, 0, low_open=True)
        self.beta, self.eps = beta, eps

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "policy_rejected_logps", "chosen_lengths",
                "rejected_lengths", loss="amapo")
        logp_c, logp_r = inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]
        u_c = logp_c / lengths_like(inputs["chosen_lengths"], logp_c)  # [B]
        u_r = logp_r / lengths_like(inputs["rejected_lengths"], logp_r)  # [B]
        x = u_c - u_r  # [B]
        batch = gather_across_ranks(x.detach())  # [N]
        margins = amapo_margins(x, batch, self.beta, self.eps)
        return LossOutput(
            losses=F.softplus(-(self.beta * x - margins)),
            chosen_rewards=(self.beta * u_c).detach(),
            rejected_rewards=(self.beta * u_r).detach(),
            metrics={"amapo/mean_margin": margins.mean()},
        )
