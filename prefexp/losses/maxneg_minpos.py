"""MaxNeg-MinPos (RoseRAG, Liu et al., Findings of ACL 2025, arXiv 2502.10993: "Robust
retrieval-augmented generation with small-scale LLMs via margin-aware preference optimization"),
written as a loss over K responses per prompt (methods.md 3.6, hard form).

Per prompt b with scores a_b,k (k < K) and labels positive / negative:

    a      = u = logp / len          (minus ref / len when use_reference)           [B, K]
    s+     = min over valid positives of a      (least-confident correct response)   [B]
    s-     = max over valid negatives of a      (most-confident incorrect response)  [B]
    L      = softplus(-beta (s+ - s-))                                              [B]

Only the selected pair gets gradient (min / max). The paper selects this hardest pair offline
and trains ORPO on it; the confidence measure, K and the base loss are not specified there, so
u (ORPO's scale) and a logistic base loss are our choices [I].

Inputs: group_logps [B, K] (summed log-probs), group_lengths [B, K], group_positive [B, K] bool,
group_mask [B, K] bool (valid responses; default all valid), group_reference_logps [B, K]
(use_reference only). Without group_*, pairs are used as groups of K = 2 (chosen positive,
rejected negative), so the loss runs on the 4 standard pair tensors + lengths. A row with no
valid positive or no valid negative raises a ValueError naming the row.
Hyperparameters:
    beta: in (0, inf), default 1.0 (scores are already on the u scale).
    use_reference: default false; true scores u - v (a length-normalised log-ratio).
Rewards: the selected scores s+ (chosen) and s- (rejected), detached. Not in TRL.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import LossOutput, PreferenceLoss, check_range, lengths_like, require


def group_inputs(inputs: dict, use_reference: bool, loss: str) -> dict:
    """The group_* tensors [B, K]; pairs become groups of K = 2 when group_logps is absent."""
    if inputs.get("group_logps") is not None:
        require(inputs, "group_logps", "group_lengths", "group_positive", loss=loss)
        if use_reference:
            require(inputs, "group_reference_logps", loss=loss)
        group = {k: inputs.get(k) for k in ("group_logps", "group_lengths", "group_positive",
                                            "group_mask", "group_reference_logps")}
        if group["group_mask"] is None:
            group["group_mask"] = torch.ones_like(group["group_positive"], dtype=torch.bool)
        return group
    names = ["policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"]
    if use_reference:
        names += ["reference_chosen_logps", "reference_rejected_logps"]
    require(inputs, *names, loss=loss)
    logps = torch.stack([inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]], dim=1)  # [B, 2]
    positive = torch.tensor([[True, False]], device=logps.device).expand(logps.shape[0], 2)
    group = {"group_logps": logps, "group_positive": positive,
             "group_lengths": torch.stack([inputs["chosen_lengths"], inputs["rejected_lengths"]], dim=1),
             "group_mask": torch.ones_like(positive), "group_reference_logps": None}
    if use_reference:
        group["group_reference_logps"] = torch.stack(
            [inputs["reference_chosen_logps"], inputs["reference_rejected_logps"]], dim=1)
    return group


def group_scores(group: dict, use_reference: bool, loss: str) -> tuple[Tensor, Tensor, Tensor]:
    """Scores a [B, K] and the valid-positive / valid-negative masks [B, K]; checks every row."""
    logps = group["group_logps"]
    lengths = lengths_like(group["group_lengths"], logps)
    scores = logps / lengths  # u [B, K]
    if use_reference:
        scores = scores - group["group_reference_logps"].to(logps) / lengths
    mask = group["group_mask"].to(device=logps.device, dtype=torch.bool)
    labels = group["group_positive"].to(device=logps.device, dtype=torch.bool)
    positive, negative = labels & mask, ~labels & mask
    for side, valid in (("positive", positive), ("negative", negative)):
        empty = (~valid.any(dim=1)).nonzero()
        if empty.numel():
            raise ValueError(f"loss '{loss}': row {int(empty[0])} has no valid {side} response "
                             f"(group_positive / group_mask); every prompt needs at least one of each")
    scores = torch.where(mask, scores, torch.zeros_like(scores))  # padded entries cannot leak NaN
    return scores, positive, negative


def hard_scores(scores: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
    """s+ = min over positives, s- = max over negatives, both [B]."""
    s_pos = scores.masked_fill(~positive, float("inf")).amin(dim=1)
    s_neg = scores.masked_fill(~negative, float("-inf")).amax(dim=1)
    return s_pos, s_neg


class MaxNegMinPosLoss(PreferenceLoss):
    needs_reference = False
    needs_lengths = True
    needs_groups = True
    name = "maxneg_minpos"

    def __init__(self, beta: float = 1.0, use_reference: bool = False):
        check_range("beta", beta, 0, low_open=True)
        self.beta, self.use_reference = beta, bool(use_reference)
        self.needs_reference = self.use_reference

    def select(self, scores: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
        return hard_scores(scores, positive, negative)

    def __call__(self, **inputs: Tensor) -> LossOutput:
        group = group_inputs(inputs, self.use_reference, self.name)
        scores, positive, negative = group_scores(group, self.use_reference, self.name)  # [B, K]
        s_pos, s_neg = self.select(scores, positive, negative)  # [B], [B]
        gap = s_pos - s_neg
        return LossOutput(
            losses=F.softplus(-self.beta * gap),
            chosen_rewards=s_pos.detach(),
            rejected_rewards=s_neg.detach(),
            metrics={f"{self.name}/gap": gap.mean().detach()},
        )
