"""The loss contract: what every preference objective takes and returns.

A loss is a small class whose hyperparameters come from ``conf/loss/<name>.yaml`` (Hydra
``_target_`` + keyword arguments) and whose ``__call__`` is a pure function of per-sequence
tensors. The training engine never looks at a loss's name: it reads the capability flags below
and prepares only the inputs the loss declares (a reference-free loss never runs a reference
model, a loss without ``needs_margins`` never sees margins). A loss ignores inputs it does not use.

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
    kl_baseline                                       optional scalar: KTO's KL baseline z0
    update_state                                      optional bool (default True): stateful losses
                                                      skip their running-statistics update when
                                                      False (evaluation batches)
Multi-response losses (``needs_groups``) take instead, shape [B, K]:
    group_logps, group_reference_logps, group_lengths, group_positive (bool), group_mask (bool)

Output: :class:`LossOutput`. The batch objective is ALWAYS ``out.losses.mean()``: losses whose
natural reduction is not a plain mean over pairs (token-mean NLL, beta-DPO's mean over the
selected subset) scale their per-example terms so that this identity holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
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
    """Base class. Subclasses set the flags and implement ``__call__(self, **inputs)``.

    Flags (class attributes, read by the engine, never a name check):
        needs_reference: reference log-probs must be supplied.
        needs_lengths:   chosen_lengths / rejected_lengths must be supplied.
        needs_margins:   margins must be supplied (MixDPO, MADPO).
        needs_groups:    K responses per prompt (group_* inputs) instead of pairs.
        needs_token_logps: per-token chosen log-probs (token cleaning of the SFT term).
        supports_token_cleaning: the loss has an SFT term that honours ``chosen_token_mask``
                         (``token_cleaning=global|sample`` is refused for other losses).
        margin_metric:   the difficulty metric the method defines its ``margins`` on (MADPO:
                         "reward_model"); None = the router's ``router.metric``.
        is_stateful:     keeps running statistics across steps (beta-DPO, AlphaDPO); the state is
                         an attribute, updated by a pure ``ema_update`` function.
        uses_tau:        reads the top-level router threshold ``tau``.
        routes_pairs:    splits pairs into branches; the engine logs ``route/*`` for it.
        preference_branch: the loss its preference side is (MixDPO: dpo | ipo | simpo), which the
                         plan records as that side's name; None = the loss itself.
    Every flag is declared here, so callers read them as attributes (no getattr with a default).
    A subclass may override a flag per instance when a hyperparameter changes what it needs
    (IPO without length normalisation, MixDPO's reference-free SimPO branch).
    """

    needs_reference: bool = True
    needs_lengths: bool = False
    needs_margins: bool = False
    needs_groups: bool = False
    needs_token_logps: bool = False
    supports_token_cleaning: bool = False
    margin_metric: str | None = None
    is_stateful: bool = False
    uses_tau: bool = False
    routes_pairs: bool = False
    preference_branch: str | None = None

    def __call__(self, **inputs: Tensor) -> LossOutput:  # pragma: no cover - interface
        raise NotImplementedError


# ----------------------------------------------------------------------------- validation

def check_range(key: str, value: float, low: float = -math.inf, high: float = math.inf, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ``ValueError('loss.<key>=<value> is outside <range>')`` unless low <= value <= high.

    ``low_open`` / ``high_open`` make that end strict. NaN is always rejected.
    """
    ok = value == value  # NaN check
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        left = "(" if low_open or low == -math.inf else "["
        right = ")" if high_open or high == math.inf else "]"
        interval = f"{left}{low:g}, {high:g}{right}"
        raise ValueError(f"loss.{key}={value} is outside the allowed range {interval}")


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"loss.{key}={value!r} is not one of the allowed values {choices}")


def require(inputs: dict, *names: str, loss: str) -> None:
    """Fail with a message naming the missing inputs and the loss that needs them."""
    missing = [n for n in names if inputs.get(n) is None]
    if missing:
        raise ValueError(f"loss '{loss}' needs input(s) {missing}; got {sorted(k for k, v in inputs.items() if v is not None)}")


# ----------------------------------------------------------------------------- shared maths

def lengths_like(lengths: Tensor, like: Tensor) -> Tensor:
    """Token counts as ``like``'s float dtype, clamped to >= 1 (TRL's convention)."""
    return lengths.to(device=like.device, dtype=like.dtype).clamp(min=1)


def log_ratios(inputs: dict) -> tuple[Tensor, Tensor]:
    """``lr_c = logp_c - ref_c`` and ``lr_r = logp_r - ref_r``, both [B]."""
    lr_c = inputs["policy_chosen_logps"] - inputs["reference_chosen_logps"]
    lr_r = inputs["policy_rejected_logps"] - inputs["reference_rejected_logps"]
    return lr_c, lr_r


def smoothed_logistic(x: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """``(1-eps) * sp(-x) + eps * sp(x)``: the (conservative) Bradley-Terry loss on logit x [B]."""
    losses = F.softplus(-x)
    if label_smoothing:
        losses = (1 - label_smoothing) * losses + label_smoothing * F.softplus(x)
    return losses


def token_mean_nll_terms(chosen_logps: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Per-example terms [B] whose mean is the batch token-mean NLL ``-sum(logp_c)/sum(len_c)``.

    TRL's ``sft`` term, RPO, CPO and ORPO use this convention (methods.md section 0).
    """
    batch = chosen_logps.shape[0]
    total_tokens = lengths_like(chosen_lengths, chosen_logps).sum()
    return -chosen_logps * batch / total_tokens


def sequence_mean_nll(chosen_logps: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Per-sequence mean NLL [B]: ``-logp_c / len_c`` (MixDPO's SFT branch)."""
    return -chosen_logps / lengths_like(chosen_lengths, chosen_logps)


def batch_std(x: Tensor) -> Tensor:
    """Unbiased (N-1) standard deviation of a flat tensor; 0 when it has fewer than 2 entries."""
    if x.numel() < 2:
        return torch.zeros((), dtype=x.dtype, device=x.device)
    return x.std()


def ema_update(mean: Tensor, std: Tensor, batch_mean: Tensor, batch_std_: Tensor,
               decay: float) -> tuple[Tensor, Tensor]:
    """Pure EMA step used by beta-DPO and AlphaDPO: ``s <- decay * s + (1 - decay) * batch``."""
    new_mean = decay * mean + (1 - decay) * batch_mean
    new_std = decay * std + (1 - decay) * batch_std_
    return new_mean.detach(), new_std.detach()


def detached(x: Tensor) -> Tensor:
    """Kept for callers of the first version of this module."""
    return x.detach()


# ----------------------------------------------------------------------------- distributed

def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def gather_with_offset(x: Tensor) -> tuple[Tensor, int]:
    """All-gather a 1-D tensor over data-parallel ranks, in rank order, detached.

    Returns the concatenation and the offset of this rank's slice in it. Ranks may hold
    different numbers of entries (last batch). Without an initialised process group: ``(x, 0)``.
    """
    if not _distributed():
        return x, 0
    x = x.detach().reshape(-1)
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.numel()], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    padded = torch.zeros(max(counts), dtype=x.dtype, device=x.device)
    padded[: x.numel()] = x
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    gathered = torch.cat([p[:n] for p, n in zip(parts, counts)])
    return gathered, sum(counts[:rank])


def gather_across_ranks(x: Tensor) -> Tensor:
    """The batch statistic input of every data-parallel rank, concatenated [N_total], detached.

    Returns ``x`` unchanged when ``torch.distributed`` is not initialised (single process).
    """
    return gather_with_offset(x)[0]


__all__ = [
    "LossOutput", "PreferenceLoss", "check_range", "check_choice", "require", "lengths_like",
    "log_ratios", "smoothed_logistic", "token_mean_nll_terms", "sequence_mean_nll", "batch_std",
    "ema_update", "gather_with_offset", "gather_across_ranks",
]
