"""CPO (Xu et al. 2024, "Contrastive preference optimization", arXiv 2401.08417, eq. 3 plus the
NLL regulariser); TRL experimental CPOTrainer ``loss_type="sigmoid"``.

    L_pref = (1 - eps) * softplus(-beta * (logp_c - logp_r)) + eps * softplus(beta * (...))  [B]
    L      = L_pref + alpha * NLL_tok                                                       [B]

DPO with a uniform reference (summed log-probs enter the preference term) plus behaviour
cloning on the chosen response. NLL_tok = -sum_b logp_c,b / sum_b len_c,b, the batch token mean
(TRL's cross-entropy over the chosen completion tokens), returned as per-example terms whose
mean is NLL_tok (base.token_mean_nll_terms).

Hyperparameters:
    beta: in (0, inf), default 0.1 (TRL).
    alpha: NLL weight (TRL ``cpo_alpha``), in [0, inf), default 1.0.
    label_smoothing (eps): in [0, 0.5), default 0 (TRL's CPO label smoothing).
Rewards: ``beta * logp`` (summed), detached, as TRL.
Departures from TRL 1.16: TRL's AlphaPO reward transform (``alpha`` in CPOConfig, default 0) is
not offered; our ``alpha`` is TRL's ``cpo_alpha``.
"""
from __future__ import annotations

from torch import Tensor

from .base import (LossOutput, PreferenceLoss, check_range, require, smoothed_logistic,
                   token_mean_nll_terms)


class CPOLoss(PreferenceLoss):
    needs_reference = False
    needs_lengths = True

    def __init__(self, beta: float = 0.1, alpha: float = 1.0, label_smoothing: float = 0.0):
        check_range("beta", beta, 0, low_open=True)
        check_range("alpha", alpha, 0)
        check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
        self.beta, self.alpha, self.label_smoothing = beta, alpha, label_smoothing

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", loss="cpo")
        logp_c, logp_r = inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]
        pref = smoothed_logistic(self.beta * (logp_c - logp_r), self.label_smoothing)  # [B]
        nll = token_mean_nll_terms(logp_c, inputs["chosen_lengths"])  # [B], mean = NLL_tok
        return LossOutput(
            losses=pref + self.alpha * nll,
            chosen_rewards=(self.beta * logp_c).detach(),
            rejected_rewards=(self.beta * logp_r).detach(),
            metrics={"nll_loss": nll.mean().detach()},
        )
