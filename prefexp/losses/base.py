"""The loss contract: what every preference objective takes and returns.

A loss is a small class whose hyperparameters come from ``conf/loss/<name>.yaml`` (Hydra
``_target_`` + keyword arguments) and whose ``__call__`` is a pure function of per-sequence
tensors. The training engine never looks at a loss's name: it reads the capability flags below
and prepares only the inputs the loss declares (a reference-free loss never runs a reference
model, a loss without ``needs_margins`` never sees margins).

Inputs (keyword tensors, all shape [B] unless noted):
    policy_chosen_logps, policy_rejected_logps        summed log-probs of the response tokens
    reference_chosen_logps, reference_rejected_logps  same under the frozen reference (no grad)
    chosen_lengths, rejected_lengths                  response token counts (>= 1)
    margins                                           difficulty margin per pair (rating, reward
                                                      model or reference log-prob gap)
    difficult                                         optional bool [B]: the router's decision,
                                                      overrides ``margins < tau`` in routing losses
    chosen_token_logps, chosen_token_mask             optional [B, T]: per-token log-probs and a
                                                      0/1 keep-mask (token cleaning) for SFT terms
Multi-response losses (``needs_groups``) take instead, shape [B, K]:
    group_logps, group_reference_logps, group_lengths, group_positive (bool), group_mask (bool)

Output: :class:`LossOutput`. The batch objective is ALWAYS ``out.losses.mean()``: losses whose
natural reduction is not a plain mean over pairs (token-mean NLL, beta-DPO's mean over the
selected subset) scale their per-example terms so that this identity holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class LossOutput:
    """Per-example losses [B], implicit rewards [B] (detached) and extra scalar diagnostics."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)

    @property
    def loss(self) -> Tensor:
        """The scalar batch objective."""
        return self.losses.mean()


class PreferenceLoss:
    """Base class. Subclasses set the flags and implement ``__call__``.

    Flags (class attributes, read by the engine, never a name check):
        needs_reference: reference log-probs must be supplied.
        needs_lengths:   chosen_lengths / rejected_lengths must be supplied.
        needs_margins:   margins must be supplied (MixDPO, MADPO).
        needs_groups:    K responses per prompt (group_* inputs) instead of pairs.
        needs_token_logps: per-token chosen log-probs (token cleaning of the SFT term).
        is_stateful:     keeps running statistics across steps (beta-DPO, AlphaDPO); the state is
                         an attribute, updated by a pure ``update_state`` function.
        uses_tau:        reads the top-level router threshold ``tau``.
        routes_pairs:    splits pairs into branches; the engine logs ``route/*`` for it.
    """

    needs_reference: bool = True
    needs_lengths: bool = False
    needs_margins: bool = False
    needs_groups: bool = False
    needs_token_logps: bool = False
    is_stateful: bool = False
    uses_tau: bool = False
    routes_pairs: bool = False

    def __call__(self, **inputs: Tensor) -> LossOutput:  # pragma: no cover - interface
        raise NotImplementedError


def token_mean_nll_terms(chosen_logps: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Per-example terms [B] whose mean is the batch token-mean NLL ``-sum(logp_c)/sum(len_c)``.

    TRL's ``sft`` term, RPO, CPO and ORPO use this convention (methods.md section 0).
    """
    batch = chosen_logps.shape[0]
    total_tokens = chosen_lengths.to(chosen_logps.dtype).clamp(min=1).sum()
    return -chosen_logps * batch / total_tokens


def sequence_mean_nll(chosen_logps: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Per-sequence mean NLL [B]: ``-logp_c / len_c`` (MixDPO's SFT branch)."""
    return -chosen_logps / chosen_lengths.to(chosen_logps.dtype).clamp(min=1)


def require(inputs: dict, *names: str, loss: str) -> None:
    """Fail with a message naming the missing inputs and the loss that needs them."""
    missing = [n for n in names if inputs.get(n) is None]
    if missing:
        raise ValueError(f"loss '{loss}' needs input(s) {missing}; got {sorted(k for k, v in inputs.items() if v is not None)}")


def detached(x: Tensor) -> Tensor:
    return x.detach()


__all__ = ["LossOutput", "PreferenceLoss", "token_mean_nll_terms", "sequence_mean_nll", "require"]
