"""beta-DPO (Wu et al., NeurIPS 2024, "beta-DPO: Direct preference optimization with dynamic
beta", arXiv 2407.08639); official code ``junkangwu/beta-DPO`` (trainers.py, ``mode_loss=beta_DPO``).

Per call (each micro-batch, as the official code), with h = (logp_c - ref_c) - (logp_r - ref_r) [B]
and H = sg[h] gathered over data-parallel ranks [N]:

    1. EMA first, then use (both start at 0, unbiased std):
         M0 <- gamma * M0 + (1 - gamma) * mean(H);   sigma_M <- gamma * sigma_M + (1 - gamma) * std(H)
    2. w_i = exp(-1/2 * ((H_i - M0) / sigma_M)^2); sample n = floor(N (1 - rho)) indices without
       replacement, probability proportional to w (beta-guided filtering).
    3. beta_used = sg[clamp(beta * (1 + a * (mean(H[selected]) - M0)), min=1e-3)], one scalar.
    4. L_i = softplus(-beta_used * h_i); the objective is the mean over the SELECTED examples of
       this rank. Returned as L_i * B / n_selected_local on selected, 0 elsewhere, so that
       ``losses.mean()`` is that objective (0 if this rank has none selected, as official).

The gap is the unscaled h (official), not beta * h (MADPO's re-implementation).

Hyperparameters:
    beta: base beta0, in (0, inf), default 0.1.
    a: sensitivity of beta to the batch gap, in [0, inf), default 0.6 (README; a = 0 is DPO with
       filtering).
    rho: filtered-out fraction (official ``mode_weight``), in [0, 1), default 0.2 (keep 80 %).
    gamma: EMA decay, in [0, 1), default 0.9.
    seed: seed of the sampler's torch.Generator (CPU; every rank draws the same selection).
State (attributes): ``gap_mean`` (M0), ``gap_std`` (sigma_M), 0-d tensors; ``state_dict()``.
Pass ``update_state=False`` to use the state without updating it (evaluation).
Departures from the official code: sigma_M is floored at 1e-6 in the weights (official divides
by 0 at a zero-variance start); n is at least 1 (official selects none, giving NaN, for
N (1 - rho) < 1); the std of a single gathered value is 0 (official: NaN); the sampler draws on
CPU from its own seeded generator, not the global RNG (same distribution, other random stream).
Metrics: beta_dpo/beta_used, beta_dpo/selected_fraction (global), beta_dpo/gap_mean, gap_std.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import (LossOutput, PreferenceLoss, batch_std, check_range, ema_update,
                   gather_with_offset, log_ratios, require)
from .dpo import PAIR_INPUTS

STD_FLOOR = 1e-6
BETA_MIN = 1e-3


def sample_selection(gaps: Tensor, gap_mean: Tensor, gap_std: Tensor, rho: float,
                     generator: torch.Generator) -> Tensor:
    """Bool mask [N]: floor(N (1 - rho)) (>= 1) indices drawn without replacement, p ~ w."""
    n = gaps.numel()
    keep = max(1, math.floor(n * (1 - rho)))
    if keep >= n:
        return torch.ones(n, dtype=torch.bool, device=gaps.device)
    z = (gaps.double().cpu() - float(gap_mean)) / max(float(gap_std), STD_FLOOR)  # [N]
    log_w = -0.5 * z**2
    weights = torch.exp(log_w - log_w.max())  # max-shift: the largest weight is 1, sum > 0
    index = torch.multinomial(weights, keep, replacement=False, generator=generator)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[index] = True
    return mask.to(gaps.device)


def dynamic_beta(gaps: Tensor, selected: Tensor, gap_mean: Tensor, beta: float, a: float) -> Tensor:
    """beta_used = clamp(beta * (1 + a * (mean(gaps[selected]) - M0)), min=1e-3), detached, 0-d."""
    return (beta * (1 + a * (gaps[selected].mean() - gap_mean))).clamp(min=BETA_MIN).detach()


def beta_dpo_losses(h: Tensor, selected: Tensor, beta_used: Tensor) -> Tensor:
    """Per-example losses [B] whose mean is the mean of softplus(-beta_used h) over selected."""
    n_sel = selected.sum()
    scale = h.shape[0] / n_sel.clamp(min=1).to(h.dtype)
    return torch.where(selected, F.softplus(-beta_used * h) * scale, torch.zeros_like(h))


class BetaDPOLoss(PreferenceLoss):
    needs_reference = True
    is_stateful = True

    def __init__(self, beta: float = 0.1, a: float = 0.6, rho: float = 0.2, gamma: float = 0.9, seed: int = 0):
        check_range("beta", beta, 0, low_open=True)
        check_range("a", a, 0)
        check_range("rho", rho, 0, 1, high_open=True)
        check_range("gamma", gamma, 0, 1, high_open=True)
        self.beta, self.a, self.rho, self.gamma, self.seed = beta, a, rho, gamma, int(seed)
        self.gap_mean = torch.zeros((), dtype=torch.float64)
        self.gap_std = torch.zeros((), dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(self.seed)

    def state_dict(self) -> dict:
        return {"gap_mean": self.gap_mean.cpu(), "gap_std": self.gap_std.cpu(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gap_mean, self.gap_std = state["gap_mean"].double(), state["gap_std"].double()
        self.generator.set_state(state["generator"])

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="beta_dpo")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        h = lr_c - lr_r  # [B]
        gaps, offset = gather_with_offset(h.detach())  # [N], this rank's slice starts at offset
        gap_mean, gap_std = self.gap_mean.to(gaps), self.gap_std.to(gaps)
        if inputs.get("update_state", True):
            gap_mean, gap_std = ema_update(gap_mean, gap_std, gaps.mean(), batch_std(gaps), self.gamma)
            self.gap_mean, self.gap_std = gap_mean.double().cpu(), gap_std.double().cpu()
        selected_all = sample_selection(gaps, gap_mean, gap_std, self.rho, self.generator)  # [N]
        beta_used = dynamic_beta(gaps, selected_all, gap_mean, self.beta, self.a)
        selected = selected_all[offset: offset + h.shape[0]]  # [B]
        return LossOutput(
            losses=beta_dpo_losses(h, selected, beta_used.to(h.dtype)),
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
            metrics={"beta_dpo/beta_used": beta_used, "beta_dpo/selected_fraction": selected_all.float().mean(),
                     "beta_dpo/gap_mean": gap_mean.detach(), "beta_dpo/gap_std": gap_std.detach()},
        )
