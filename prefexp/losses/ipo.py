"""IPO (Azar et al. 2023, "A general theoretical paradigm to understand learning from human
preferences", arXiv 2310.12036, eq. 17); TRL ``loss_type="ipo"``.

    length_normalize=True (default, TRL form):
        hbar = (logp_c - ref_c) / len_c - (logp_r - ref_r) / len_r          [B]
        L    = (hbar - 1 / (2 beta))^2                                      [B]
    length_normalize=False (paper form, summed log-ratios):
        L    = (h - 1 / (2 beta))^2,   h = (logp_c - ref_c) - (logp_r - ref_r)

Regresses the margin onto the fixed target 1/(2 beta); no saturation. TRL states its per-token
averaging was confirmed with the IPO authors, so it is our default; the paper's summed form is
the flag. Lengths are needed only in the TRL form.

Hyperparameters:
    beta: the paper's tau, in (0, inf), default 0.1 (target margin 5).
    length_normalize: bool, default True.
Rewards: ``beta * (logp - ref)`` (summed, as TRL logs them). Departures from TRL 1.16: none in
the default; ``length_normalize=False`` is the paper form TRL does not offer.
"""
from __future__ import annotations

from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, lengths_like, log_ratios, require
from .dpo import PAIR_INPUTS


class IPOLoss(PreferenceLoss):
    needs_reference = True
    needs_lengths = True

    def __init__(self, beta: float = 0.1, length_normalize: bool = True):
        check_range("beta", beta, 0, low_open=True)
        self.beta, self.length_normalize = beta, bool(length_normalize)
        self.needs_lengths = self.length_normalize

    def __call__(self, **inputs: Tensor) -> LossOutput:
        require(inputs, *PAIR_INPUTS, loss="ipo")
        lr_c, lr_r = log_ratios(inputs)  # [B], [B]
        if self.length_normalize:
            require(inputs, "chosen_lengths", "rejected_lengths", loss="ipo")
            delta = (lr_c / lengths_like(inputs["chosen_lengths"], lr_c)
                     - lr_r / lengths_like(inputs["rejected_lengths"], lr_r))  # hbar [B]
        else:
            delta = lr_c - lr_r  # h [B]
        return LossOutput(
            losses=(delta - 1 / (2 * self.beta)) ** 2,
            chosen_rewards=(self.beta * lr_c).detach(),
            rejected_rewards=(self.beta * lr_r).detach(),
        )
