"""MixDPO (Pang et al. 2026, "Small-margin preferences still matter - if you train them right",
arXiv 2602.00954); official code ``JlPang863/QualityDPO``, ``loss_type="noisy-tolerant-4-6"``.

Per pair with difficulty margin M (= score_c - score_r for the rating metric):

    z_i = 1[M_i < tau]                                     strict: M == tau goes to DPO
    L_i = z_i * (-logp_c,i / len_c,i)                      SFT branch, per-sequence mean NLL
        + (1 - z_i) * [(1-eps) sp(-beta h_i) + eps sp(beta h_i)]   preference branch (cDPO)
    L   = mean_i L_i                                       lengths carry no weighting

Hyperparameters:
    beta: in (0, inf), paper 0.01.
    label_smoothing (eps): in [0, 0.5), official config 0.1 (dpo and simpo branches).
    tau: the top-level router threshold (``tau: ${tau}``; paper 0.5 on UltraFeedback's 1-10
         scale), any non-NaN float; -inf routes every pair to the preference branch, +inf to SFT.
    preference_branch: dpo | ipo | simpo, as the authors' variants. simpo uses gamma_beta_ratio
         (in [0, inf), default 0.5) and is reference-free; ipo is the TRL length-normalised form
         (ipo.IPOLoss defaults) and ignores eps.
Inputs: ``difficult`` (bool [B]) from the router overrides ``margins < tau`` (quantile or band
routers). ``chosen_token_logps`` / ``chosen_token_mask`` [B, T] (token cleaning) restrict the
SFT branch to the kept tokens: -sum(kept logps) / #kept per sequence.
Rewards: the preference branch's (beta * log-ratio, or beta * u for simpo) on every pair.
Metric: route/sft_fraction. Shapes: inputs [B], losses [B].
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import (LossOutput, PreferenceLoss, check_choice, check_range, lengths_like, log_ratios,
                   require, sequence_mean_nll, smoothed_logistic)
from .simpo import simpo_losses

BRANCHES = ("dpo", "ipo", "simpo")


class MixDPOLoss(PreferenceLoss):
    needs_reference = True
    needs_lengths = True
    needs_margins = True
    supports_token_cleaning = True
    uses_tau = True
    routes_pairs = True

    def __init__(self, beta: float = 0.01, label_smoothing: float = 0.1, tau: float = 0.5,
                 preference_branch: str = "dpo", gamma_beta_ratio: float = 0.5):
        check_range("beta", beta, 0, low_open=True)
        check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
        check_range("tau", float(tau))
        check_choice("preference_branch", preference_branch, BRANCHES)
        check_range("gamma_beta_ratio", gamma_beta_ratio, 0)
        self.beta, self.label_smoothing, self.tau = beta, label_smoothing, float(tau)
        self.preference_branch, self.gamma_beta_ratio = preference_branch, gamma_beta_ratio
        self.needs_reference = preference_branch != "simpo"

    def _preference_losses(self, inputs: dict) -> tuple[Tensor, Tensor, Tensor]:
        logp_c, logp_r = inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]
        len_c = lengths_like(inputs["chosen_lengths"], logp_c)
        len_r = lengths_like(inputs["rejected_lengths"], logp_r)
        beta = self.beta
        if self.preference_branch == "simpo":
            u_c, u_r = logp_c / len_c, logp_r / len_r  # [B]
            losses = simpo_losses(u_c, u_r, beta, self.gamma_beta_ratio, self.label_smoothing)
            return losses, beta * u_c, beta * u_r
        require(inputs, "reference_chosen_logps", "reference_rejected_logps", loss="mixdpo")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        if self.preference_branch == "ipo":
            hbar = lr_c / len_c - lr_r / len_r
            losses = (hbar - 1 / (2 * beta)) ** 2
        else:
            losses = smoothed_logistic(beta * (lr_c - lr_r), self.label_smoothing)
        return losses, beta * lr_c, beta * lr_r

    def _sft_losses(self, inputs: dict) -> Tensor:
        mask = inputs.get("chosen_token_mask")
        if mask is not None:  # token cleaning: per-sequence mean over kept tokens only
            require(inputs, "chosen_token_logps", loss="mixdpo (chosen_token_mask given)")
            token_logps = inputs["chosen_token_logps"]  # [B, T]
            mask = mask.to(token_logps.dtype)
            return -(token_logps * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return sequence_mean_nll(inputs["policy_chosen_logps"], inputs["chosen_lengths"])

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "policy_rejected_logps", "chosen_lengths",
                "rejected_lengths", loss="mixdpo")
        difficult = inputs.get("difficult")
        if difficult is None:
            require(inputs, "margins", loss="mixdpo")
            difficult = inputs["margins"] < self.tau  # [B] bool, strict
        difficult = difficult.to(device=inputs["policy_chosen_logps"].device, dtype=torch.bool)
        pref, chosen_rewards, rejected_rewards = self._preference_losses(inputs)
        sft = self._sft_losses(inputs)
        losses = torch.where(difficult, sft, pref)  # [B]; where() keeps the unused branch's grad at 0
        return LossOutput(
            losses=losses,
            chosen_rewards=chosen_rewards.detach(),
            rejected_rewards=rejected_rewards.detach(),
            metrics={"route/sft_fraction": difficult.float().mean().detach()},
        )
