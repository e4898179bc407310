"""DPO + NLL, RPO (Pang et al. 2024, "Iterative reasoning preference optimization",
arXiv 2404.19733); TRL ``loss_type=["sigmoid", "sft"]`` with ``loss_weights=[1, alpha]``
(formerly ``rpo_alpha``).

    h = (logp_c - ref_c) - (logp_r - ref_r)                                 [B]
    L = softplus(-beta * h) + alpha * NLL                                   [B]
    NLL = NLL_tok = -sum_b logp_c,b / sum_b len_c,b    nll="token" (default, TRL)
        = -logp_c,b / len_c,b  per sequence            nll="sequence" (the paper's normalisation)

The token form is returned as per-example terms whose mean is NLL_tok, so ``losses.mean()`` is
TRL's objective.

Hyperparameters:
    beta: in (0, inf), default 0.1.
    alpha: NLL weight, in [0, inf), default 1.0 (TRL doc: "paper recommends rpo_alpha=1.0").
    nll: "token" | "sequence".
Rewards: ``beta * (logp - ref)``, detached. Departures from TRL 1.16: none for nll="token".
"""
from __future__ import annotations

from torch import Tensor

from .base import (LossOutput, PreferenceLoss, check_choice, check_range, log_ratios, require,
                   sequence_mean_nll, token_mean_nll_terms)
from .dpo import PAIR_INPUTS, dpo_losses


class RPOLoss(PreferenceLoss):
    needs_reference = True
    needs_lengths = True

    def __init__(self, beta: float = 0.1, alpha: float = 1.0, nll: str = "token"):
        check_range("beta", beta, 0, low_open=True)
        check_range("alpha", alpha, 0)
        check_choice("nll", nll, ("token", "sequence"))
        self.beta, self.alpha, self.nll = beta, alpha, nll

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, "chosen_lengths", loss="rpo")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        logp_c, len_c = inputs["policy_chosen_logps"], inputs["chosen_lengths"]
        nll_fn = token_mean_nll_terms if self.nll == "token" else sequence_mean_nll
        nll = nll_fn(logp_c, len_c)  # [B]
        return LossOutput(
            losses=dpo_losses(lr_c - lr_r, self.beta) + self.alpha * nll,
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
            metrics={"nll_loss": nll.mean().detach()},
        )
