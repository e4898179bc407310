"""SFT: negative log-likelihood of the chosen response; TRL ``loss_type="sft"``.

    L = NLL_tok = -sum_b logp_c,b / sum_b len_c,b          (token-mean, the default; TRL's convention)
    L = mean_b(-logp_c,b / len_c,b)                        (normalize="sequence")

Reference-free. The rejected response is ignored. Rewards reported are the length-normalised
chosen/rejected log-probs (detached) so the usual reward diagnostics stay meaningful.
"""
from __future__ import annotations

from torch import Tensor

from .base import LossOutput, PreferenceLoss, require, sequence_mean_nll, token_mean_nll_terms


class SFTLoss(PreferenceLoss):
    needs_reference = False
    needs_lengths = True

    def __init__(self, normalize: str = "token"):
        if normalize not in ("token", "sequence"):
            raise ValueError(f"loss.normalize={normalize!r} must be 'token' or 'sequence'")
        self.normalize = normalize

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, "policy_chosen_logps", "chosen_lengths", loss="sft")
        logp_c, len_c = inputs["policy_chosen_logps"], inputs["chosen_lengths"]
        if self.normalize == "token":
            losses = token_mean_nll_terms(logp_c, len_c)
        else:
            losses = sequence_mean_nll(logp_c, len_c)
        rejected = inputs.get("policy_rejected_logps")
        rejected_lengths = inputs.get("rejected_lengths")
        rejected_rewards = (rejected / rejected_lengths.clamp(min=1)).detach() if rejected is not None and rejected_lengths is not None else (0 * logp_c).detach()
        return LossOutput(
            losses=losses,
            chosen_rewards=(logp_c / len_c.clamp(min=1)).detach(),
            rejected_rewards=rejected_rewards,
        )
