"""SimPO (Meng, Xia, Chen 2024, "SimPO: Simple preference optimization with a reference-free
reward", arXiv 2405.14734, eq. 6); TRL experimental CPOTrainer ``loss_type="simpo"``, cpo_alpha=0.

    u_c = logp_c / len_c,  u_r = logp_r / len_r                             [B]
    x   = beta * (u_c - u_r) - gamma,   gamma = gamma_beta_ratio * beta      [B]
    L   = (1 - eps) * softplus(-x) + eps * softplus(x)                       [B]

Reference-free: the reward is the length-normalised log-prob, plus a target margin gamma.

Hyperparameters:
    beta: reward scale, in (0, inf), default 2.0 (SimPO README, Llama3-Base / Mistral-Base).
    gamma_beta_ratio: gamma / beta, in [0, inf), default 0.5 (README's recommended start).
    label_smoothing (eps): in [0, 0.5), default 0 (as the SimPO code; cDPO-style when > 0).
Rewards: ``beta * u``, detached (as TRL and the SimPO code).
Departures from TRL: TRL's ``simpo_gamma`` is gamma itself (default 0.5), ours is the ratio
gamma/beta as in the SimPO code and paper; TRL's CPOTrainer also adds ``cpo_alpha * NLL``
(default 1.0); pure SimPO, as here, is TRL with cpo_alpha = 0.
"""
from __future__ import annotations

from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, lengths_like, require, smoothed_logistic


def simpo_losses(u_c: Tensor, u_r: Tensor, beta: float, gamma_beta_ratio: float,
                 label_smoothing: float = 0.0) -> Tensor:
    """Per-example SimPO loss [B] from length-normalised log-probs u_c, u_r [B]."""
    return smoothed_logistic(beta * (u_c - u_r) - gamma_beta_ratio * beta, label_smoothing)


class SimPOLoss(PreferenceLoss):
    needs_reference = False
    needs_lengths = True

    def __init__(self, beta: float = 2.0, gamma_beta_ratio: float = 0.5, label_smoothing: float = 0.0):
        check_range("beta", beta, 0, low_open=True)
        check_range("gamma_beta_ratio", gamma_beta_ratio, 0)
        check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
        self.beta, self.gamma_beta_ratio, self.label_smoothing = beta, gamma_beta_ratio, label_smoothing

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "policy_rejected_logps", "chosen_lengths",
                "rejected_lengths", loss="simpo")
        logp_c, logp_r = inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]
        u_c = logp_c / lengths_like(inputs["chosen_lengths"], logp_c)  # [B]
        u_r = logp_r / lengths_like(inputs["rejected_lengths"], logp_r)  # [B]
        return LossOutput(
            losses=simpo_losses(u_c, u_r, self.beta, self.gamma_beta_ratio, self.label_smoothing),
            chosen_rewards=(self.beta * u_c).detach(),
            rejected_rewards=(self.beta * u_r).detach(),
        )
