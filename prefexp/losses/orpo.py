"""ORPO (Hong, Lee, Thorne 2024, "ORPO: Monolithic preference optimization without reference
model", arXiv 2403.07691, eqs. 4-7); TRL experimental ORPOTrainer.

    u      = logp / len                       per-token mean log-prob           [B]
    lo(u)  = u - log(1 - exp(u))              log-odds of exp(u)                [B]
    L_OR   = softplus(-(lo(u_c) - lo(u_r))) = -log sigma(log odds ratio)        [B]
    L      = NLL_tok + lambda * L_OR                                            [B]

NLL_tok is the batch token mean over chosen response tokens, returned as per-example terms
whose mean is NLL_tok (base.token_mean_nll_terms). log(1 - e^u) uses TRL's stable ``log1mexp``
(branch at -ln 2) in float32 or wider; u is clamped to <= -1e-6 because u = 0 (a sequence of
probability 1) makes lo infinite (methods.md 2.9).

Hyperparameters:
    beta: lambda, the odds-ratio weight (yaml key ``beta`` as TRL's ORPOConfig), in [0, inf),
          default 0.1 (TRL).
Rewards: ``beta * u``, detached, as TRL.
Departures from TRL 1.16: TRL's NLL is computed over prompt AND response tokens ("orpo chosen
nll loss is computed over the full prompt and response"); ours is over response tokens only, the
same NLL_tok every other loss here uses. The two agree when the prompt is a single token (the
parity test uses that) and differ otherwise. The u <= -1e-6 clamp is ours.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, lengths_like, require, token_mean_nll_terms

U_MAX = -1e-6


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -ln 2 (as TRL's ``log1mexp``)."""
    t = -0.6931471805599453
    safe_hi = torch.where(x < t, torch.full_like(x, t), x)  # keeps the unused branch finite
    safe_lo = torch.where(x < t, x, torch.full_like(x, t))
    return torch.where(x < t, torch.log1p(-torch.exp(safe_lo)), torch.log(-torch.expm1(safe_hi)))


def log_odds(u: Tensor) -> Tensor:
    """lo(u) = u - log(1 - e^u), u clamped to <= -1e-6 and computed in >= float32."""
    u = u.to(torch.promote_types(u.dtype, torch.float32)).clamp(max=U_MAX)
    return u - log1mexp(u)


class ORPOLoss(PreferenceLoss):
    needs_reference = False
    needs_lengths = True

    def __init__(self, beta: float = 0.1):
        check_range("beta", beta, 0)
        self.beta = beta

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "policy_rejected_logps", "chosen_lengths",
                "rejected_lengths", loss="orpo")
        logp_c, logp_r = inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]
        u_c = logp_c / lengths_like(inputs["chosen_lengths"], logp_c)  # [B]
        u_r = logp_r / lengths_like(inputs["rejected_lengths"], logp_r)  # [B]
        ratio = log_odds(u_c) - log_odds(u_r)  # log odds ratio [B]
        l_or = F.softplus(-ratio)  # [B]
        nll = token_mean_nll_terms(logp_c, inputs["chosen_lengths"])  # [B], mean = NLL_tok
        return LossOutput(
            losses=nll + self.beta * l_or,
            chosen_rewards=(self.beta * u_c).detach(),
            rejected_rewards=(self.beta * u_r).detach(),
            metrics={"nll_loss": nll.mean().detach(),
                     "orpo/log_odds_ratio": (-l_or).mean().detach(),
                     "orpo/log_odds_chosen": ratio.mean().detach()},
        )
