"""AlphaDPO (Wu et al. 2024/25, "alpha-DPO: Adaptive reward margin is what direct preference
optimization needs", arXiv 2410.10148); official code ``junkangwu/alpha-DPO``
(``AlphaDPOTrainer.dpo_loss``, ``loss_type="alpha-dpo"``, ``ln=true``).

Every log-prob is length-averaged, the reference's included:

    u = logp / len,  v = ref / len                                              [B]
    pi = u_c - u_r,   M = pi - (v_c - v_r)  (= hbar)                            [B]
    EMA first, then use, once per call (init 0, M gathered over ranks, unbiased std):
        mu <- d * mu + (1 - d) * mean(M),   s <- d * s + (1 - d) * std(M)
    z = (M - mu) / max(s, eps)                                                  [B]
    L = (1 - ls) sp(-beta (pi - sg[alpha z + gamma/beta])) + ls sp(+...)       [B]
      = sp(-(beta pi - gamma - alpha beta z))   when ls = 0

SimPO with an instance-adaptive, standardised, detached DPO margin term; alpha = 0 is SimPO
exactly. Note the margin is gamma + alpha*beta*z in this (official) code; the paper may write
gamma + alpha*z, i.e. alpha_paper = alpha_code * beta (methods.md 5.1).

Hyperparameters:
    beta: in (0, inf), default 2.5;  gamma_beta_ratio: gamma/beta in [0, inf), default 0.6;
    alpha: in [0, inf), default 0.2 (Llama-3-8B-Instruct config);
    label_smoothing: in [0, 0.5), default 0;  ema_decay: in [0, 1), default 0.9;
    eps: std floor in (0, inf), default 1e-6 (the official code has none and divides by 0 at a
         zero-variance start).
State (attributes): ``ref_mean`` (mu), ``ref_std`` (s); ``update_state=False`` skips the EMA step.
Rewards: official ``beta * (u - alpha * (u - v))``, detached. Not in TRL.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import (LossOutput, PreferenceLoss, batch_std, check_range, ema_update,
                   gather_across_ranks, lengths_like, require, smoothed_logistic)
from .dpo import PAIR_INPUTS


def alpha_dpo_losses(pi: Tensor, margin: Tensor, mu: Tensor, s: Tensor, beta: float, gamma_beta_ratio: float,
                     alpha: float, label_smoothing: float = 0.0, eps: float = 1e-6) -> Tensor:
    """Per-example AlphaDPO loss [B] from pi = u_c - u_r and M = hbar [B], given the state (mu, s)."""
    z = (margin - mu) / s.clamp(min=eps)  # [B]
    target = (alpha * z + gamma_beta_ratio).detach()  # [B]
    return smoothed_logistic(beta * (pi - target), label_smoothing)


class AlphaDPOLoss(PreferenceLoss):
    needs_reference = True
    needs_lengths = True
    is_stateful = True

    def __init__(self, beta: float = 2.5, gamma_beta_ratio: float = 0.6, alpha: float = 0.2,
                 label_smoothing: float = 0.0, ema_decay: float = 0.9, eps: float = 1e-6):
        check_range("beta", beta, 0, low_open=True)
        check_range("gamma_beta_ratio", gamma_beta_ratio, 0)
        check_range("alpha", alpha, 0)
        check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
        check_range("ema_decay", ema_decay, 0, 1, high_open=True)
        check_range("eps", eps, 0, low_open=True)
        self.beta, self.gamma_beta_ratio, self.alpha = beta, gamma_beta_ratio, alpha
        self.label_smoothing, self.ema_decay, self.eps = label_smoothing, ema_decay, eps
        self.ref_mean = torch.zeros((), dtype=torch.float64)
        self.ref_std = torch.zeros((), dtype=torch.float64)

    def state_dict(self) -> dict:
        return {"ref_mean": self.ref_mean.cpu(), "ref_std": self.ref_std.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.ref_mean, self.ref_std = state["ref_mean"].double(), state["ref_std"].double()

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, "chosen_lengths", "rejected_lengths", loss="alpha_dpo")
        len_c = lengths_like(inputs["chosen_lengths"], inputs["policy_chosen_logps"])
        len_r = lengths_like(inputs["rejected_lengths"], inputs["policy_rejected_logps"])
        u_c, u_r = inputs["policy_chosen_logps"] / len_c, inputs["policy_rejected_logps"] / len_r  # [B]
        v_c, v_r = inputs["reference_chosen_logps"] / len_c, inputs["reference_rejected_logps"] / len_r  # [B]
        pi = u_c - u_r  # [B]
        margin = pi - (v_c - v_r)  # hbar [B]
        mu, s = self.ref_mean.to(pi), self.ref_std.to(pi)
        if inputs.get("update_state", True):
            gathered = gather_across_ranks(margin.detach())  # [N]
            mu, s = ema_update(mu, s, gathered.mean(), batch_std(gathered), self.ema_decay)
            self.ref_mean, self.ref_std = mu.double().cpu(), s.double().cpu()
        losses = alpha_dpo_losses(pi, margin, mu, s, self.beta, self.gamma_beta_ratio, self.alpha,
                                  self.label_smoothing, self.eps)
        a = self.alpha
        return LossOutput(
            losses=losses,
            chosen_rewards=(self.beta * (u_c - a * (u_c - v_c))).detach(),
            rejected_rewards=(self.beta * (u_r - a * (u_r - v_r))).detach(),
            metrics={"alpha_dpo/ref_mean": mu.detach(), "alpha_dpo/ref_std": s.detach()},
        )
