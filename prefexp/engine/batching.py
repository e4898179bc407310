"""Collate pairs into one concatenated batch: chosen rows first, then rejected rows.

A single forward over [2B, T] serves both responses (the usual DPO trick: one pass, one set of
activations for the backward). ``response_mask`` marks the response tokens whose log-probs count;
prompt and padding are 0.
"""
from __future__ import annotations

from typing import Sequence

import torch

PASSTHROUGH_FLOAT = ("reference_chosen_logps", "reference_rejected_logps", "margins", "pair_weights")


class PairCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows = [e["prompt_ids"] + e["chosen_ids"] for e in examples] + [e["prompt_ids"] + e["rejected_ids"] for e in examples]
        batch = padded_rows(rows, [len(e["prompt_ids"]) for e in examples] * 2, self.pad_token_id)  # [2B, T]
        batch.update(pair_fields(examples))
        if "clean_keep" in examples[0]:  # token cleaning: kept chosen tokens, aligned with token log-probs
            from ..difficulty.token_cleaning import scatter_token_mask  # (that module imports the engine)

            batch["chosen_token_mask"] = scatter_token_mask([e["clean_keep"] for e in examples],
                                                            batch["response_mask"][: len(examples)])  # [B, T-1]
        return batch


def padded_rows(rows: Sequence[list[int]], starts: Sequence[int], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``response_mask`` [N, T] of token rows whose
    response starts at ``starts[i]`` (prompt and padding are 0 in the response mask)."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # [N, T]
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [N, T]
    response_mask = torch.zeros((len(rows), width), dtype=torch.bool)  # [N, T]
    for i, (row, start) in enumerate(zip(rows, starts)):
        input_ids[i, : len(row)] = torch.tensor(row)
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
