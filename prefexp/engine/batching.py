"""Collate pairs into one concatenated batch: chosen rows first, then rejected rows.

A single forward over [2B, T] serves both responses (the usual DPO trick: one pass, one set of
activations for the backward). ``response_mask`` marks the response tokens whose log-probs count;
prompt and padding are 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

PASSTHROUGH_FLOAT = ("reference_chosen_logps", "reference_rejected_logps", "margins", "pair_weights")


class PairCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows = ([token_row(e["prompt_ids"], e["chosen_ids"]) for e in examples]
                + [token_row(e["prompt_ids"], e["rejected_ids"]) for e in examples])
        batch = padded_rows(rows, [len(e["prompt_ids"]) for e in examples] * 2, self.pad_token_id)  # [2B, T]
        batch.update(pair_fields(examples))
        if "clean_keep" in examples[0]:  # token cleaning: kept chosen tokens, aligned with token log-probs
            batch["chosen_token_mask"] = scatter_token_mask([e["clean_keep"] for e in examples],
                                                            batch["response_mask"][: len(examples)])  # [B, T-1]
        return batch


def token_row(*parts: Sequence[int]) -> torch.Tensor:
    """The token id sequences ``parts`` (lists, or the int32 arrays of the token cache) end to end,
    as one long tensor. Never ``a + b``: on numpy arrays that adds the ids element-wise. (Through
    numpy: ``torch.as_tensor`` warns on the cache's read-only arrays even when it copies.)"""
    return torch.from_numpy(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))


def padded_rows(rows: Sequence[Sequence[int] | torch.Tensor], starts: Sequence[int],
                pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``response_mask`` [N, T] of token rows whose
    response starts at ``starts[i]`` (prompt and padding are 0 in the response mask)."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # [N, T]
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [N, T]
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)  # [N, T]
    for i, (row, start) in enumerate(zip(rows, starts)):
        input_ids[i, : len(row)] = torch.as_tensor(row)
        attention_mask[i, : len(row)] = 1
        response_mask[i, start: len(row)] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask}


def pair_fields(examples: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Per-pair values every batch layout carries: index, reference log-probs, margins, weights, routes."""
    fields = {"index": torch.tensor([e["index"] for e in examples])}
    for key in PASSTHROUGH_FLOAT:
        if key in examples[0]:
            fields[key] = torch.tensor([float(e[key]) for e in examples], dtype=torch.float32)
    if "difficult" in examples[0]:
        fields["difficult"] = torch.tensor([bool(e["difficult"]) for e in examples])
    return fields


def scatter_token_mask(keep: Sequence[Sequence[int]], response_mask: Tensor) -> Tensor:
    """Place per-example keep flags into the layout of ``token_logps(logits, input_ids)`` ([B, T-1]).

    Args:
        keep: per example, one 0/1 per chosen response token (``clean_token_masks`` values).
        response_mask: [B, T] bool, True on the chosen response tokens (the chosen half of a
            ``PairCollator`` batch: ``batch["response_mask"][:B]``).
    Returns a float [B, T-1] mask aligned with ``token_logps(...)[:B]``: pass it as
    ``chosen_token_mask`` together with those log-probs as ``chosen_token_logps``.
    """
    targets = response_mask[:, 1:].bool()  # [B, T-1]; column j scores token j+1
    out = torch.zeros(targets.shape, dtype=torch.float32)
    for b, flags in enumerate(keep):
        cols = targets[b].nonzero().squeeze(-1)
        if len(flags) < len(cols):
            raise ValueError(f"example {b}: {len(flags)} keep flags for {len(cols)} response tokens")
        out[b, cols] = torch.tensor(list(flags)[len(flags) - len(cols):], dtype=torch.float32)
    return out.to(response_mask.device)
