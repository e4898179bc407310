"""MixDPO (Pang et al. 2026, arXiv 2602.00954; official code QualityDPO ``noisy-tolerant-4-6``).

Per pair with difficulty margin M (= score_c - score_r for the rating metric):

    z_i = 1[M_i < tau]                                     strict: M == tau goes to DPO
    L_i = z_i * (-logp_c,i / len_c,i)                      SFT branch, per-sequence mean NLL
        + (1 - z_i) * [(1-eps) sp(-beta h_i) + eps sp(beta h_i)]   preference branch (cDPO)
    L   = mean_i L_i                                       lengths carry no weighting

Hyperparameters: beta (paper 0.01), label_smoothing eps in [0, 0.5) (official config 0.1),
tau (top-level router threshold; paper 0.5 on UltraFeedback's 1-10 scale), preference_branch in
{dpo, ipo, simpo} as in the authors' code (simpo uses gamma_beta_ratio, default 0.5; ipo uses the
TRL length-normalised form). The router may pass ``difficult`` (bool [B]) to override
``margins < tau`` (quantile or band routers). ``chosen_token_mask`` (token cleaning) restricts the
SFT branch to the kept tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import LossOutput, PreferenceLoss, require

BRANCHES = ("dpo", "ipo", "simpo")


class MixDPOLoss(PreferenceLoss):
    needs_reference = True
    needs_lengths = True
    needs_margins = True
    uses_tau = True
    routes_pairs = True

    def __init__(self, beta: float = 0.01, label_smoothing: float = 0.1, tau: float = 0.5,
                 preference_branch: str = "dpo", gamma_beta_ratio: float = 0.5):
        if not beta > 0:
            raise ValueError(f"loss.beta={beta} must be > 0")
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f"loss.label_smoothing={label_smoothing} must be in [0, 0.5)")
        if preference_branch not in BRANCHES:
            raise ValueError(f"loss.preference_branch={preference_branch!r} must be one of {BRANCHES}")
        self.beta, self.label_smoothing, self.tau = beta, label_smoothing, float(tau)
        self.preference_branch, self.gamma_beta_ratio = preference_branch, gamma_beta_ratio
        self.needs_reference = preference_branch != "simpo"

    def _preference_losses(self, inputs: dict) -> tuple[Tensor, Tensor, Tensor]:
        logp_c, logp_r = inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]
        len_c = inputs["chosen_lengths"].to(logp_c.dtype).clamp(min=1)
        len_r = inputs["rejected_lengths"].to(logp_r.dtype).clamp(min=1)
        eps, beta = self.label_smoothing, self.beta
        if self.preference_branch == "simpo":
            x = beta * (logp_c / len_c - logp_r / len_r) - self.gamma_beta_ratio * beta
            losses = (1 - eps) * F.softplus(-x) + eps * F.softplus(x)
            return losses, beta * logp_c / len_c, beta * logp_r / len_r
        lr_c = logp_c - inputs["reference_chosen_logps"]  # [B]
        lr_r = logp_r - inputs["reference_rejected_logps"]  # [B]
        if self.preference_branch == "ipo":
            hbar = lr_c / len_c - lr_r / len_r
            losses = (hbar - 1 / (2 * beta)) ** 2
        else:
            h = lr_c - lr_r
            losses = (1 - eps) * F.softplus(-beta * h) + eps * F.softplus(beta * h)
        return losses, beta * lr_c, beta * lr_r

    def _sft_losses(self, inputs: dict) -> Tensor:
        mask = inputs.get("chosen_token_mask")
        if mask is not None:  # token cleaning: per-sequence mean over kept tokens only
            token_logps = inputs["chosen_token_logps"]  # [B, T]
            return -(token_logps * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        logp_c = inputs["policy_chosen_logps"]
        return -logp_c / inputs["chosen_lengths"].to(logp_c.dtype).clamp(min=1)

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "policy_rejected_logps", "chosen_lengths",
                "rejected_lengths", loss="mixdpo")
        difficult = inputs.get("difficult")
        if difficult is None:
            require(inputs, "margins", loss="mixdpo")
            difficult = inputs["margins"] < self.tau  # [B] bool, strict
        difficult = difficult.to(torch.bool)
        pref, chosen_rewards, rejected_rewards = self._preference_losses(inputs)
        sft = self._sft_losses(inputs)
        losses = torch.where(difficult, sft, pref)  # [B]; where() keeps the unused branch's grad at 0
        return LossOutput(
            losses=losses,
            chosen_rewards=chosen_rewards.detach(),
            rejected_rewards=rejected_rewards.detach(),
            metrics={"route/sft_fraction": difficult.float().mean().detach()},
        )
