"""SFT: negative log-likelihood of the chosen response; TRL DPOTrainer ``loss_type="sft"``.

    L = NLL_tok = -sum_b logp_c,b / sum_b len_c,b     normalize="token" (default; TRL's convention)
    L = mean_b(-logp_c,b / len_c,b)                   normalize="sequence" (MixDPO's SFT branch)

The token-mean form is returned as per-example terms ``-logp_c,b * B / sum(len_c)`` so that
``losses.mean()`` is the objective (base.token_mean_nll_terms).

With token cleaning (``chosen_token_logps`` and ``chosen_token_mask`` [B, T], methods.md 3.2) the
sums and counts run over kept tokens only: ``-sum_b sum_t m lp / sum_b sum_t m`` (token; the
official Token Cleaning loss) or ``mean_b(-sum_t m lp / sum_t m)`` (sequence).

Hyperparameters:
    normalize: "token" | "sequence" (see above).
Reference-free; the rejected response is ignored. Rewards reported are the length-normalised
chosen / rejected log-probs (detached) so the usual reward diagnostics stay meaningful; TRL
reports beta * log-ratios instead (its SFT still runs the reference model), a deliberate departure.
Shapes: inputs [B], losses [B].
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import (LossOutput, PreferenceLoss, check_choice, lengths_like, require,
                   sequence_mean_nll, token_mean_nll_terms)


class SFTLoss(PreferenceLoss):
    needs_reference = False
    needs_lengths = True
    supports_token_cleaning = True

    def __init__(self, normalize: str = "token"):
        check_choice("normalize", normalize, ("token", "sequence"))
        self.normalize = normalize

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "chosen_lengths", loss="sft")
        logp_c, len_c = inputs["policy_chosen_logps"], inputs["chosen_lengths"]
        if inputs.get("chosen_token_mask") is not None:  # token cleaning: kept tokens only
            require(inputs, "chosen_token_logps", loss="sft (chosen_token_mask given)")
            mask = inputs["chosen_token_mask"].to(logp_c.dtype)  # [B, T]
            kept_logps = (inputs["chosen_token_logps"] * mask).sum(-1)  # [B]
            kept = mask.sum(-1)  # [B]
            if self.normalize == "token":
                losses = -kept_logps * kept.shape[0] / kept.sum().clamp(min=1)  # mean = -sum m lp / sum m
            else:
                losses = -kept_logps / kept.clamp(min=1)
        elif self.normalize == "token":
            losses = token_mean_nll_terms(logp_c, len_c)
        else:
            losses = sequence_mean_nll(logp_c, len_c)
        logp_r, len_r = inputs.get("policy_rejected_logps"), inputs.get("rejected_lengths")
        if logp_r is not None and len_r is not None:
            rejected_rewards = (logp_r / lengths_like(len_r, logp_r)).detach()
        else:
            rejected_rewards = torch.zeros_like(logp_c).detach()
        return LossOutput(
            losses=losses,
            chosen_rewards=(logp_c / lengths_like(len_c, logp_c)).detach(),
            rejected_rewards=rejected_rewards,
        )
