"""Length-grouped batches that keep the curriculum: within each block of ``block`` consecutive
training examples (never across a curriculum stage) the examples are put longest first, so a
micro-batch holds similar lengths and pads less, while the order between blocks (easy to hard,
stage 1 then stage 2) is the plan's. ``block`` = 0 keeps the plan's order exactly.

Longest first, as transformers' ``LengthGroupedSampler`` does, so a block's peak memory shows at
its first step. The length of a pair is its longest sequence: prompt + the longer response.
"""
from __future__ import annotations

from itertools import groupby


def pair_length(example: dict) -> int:
    return len(example["prompt_ids"]) + max(len(example["chosen_ids"]), len(example["rejected_ids"]))


def length_grouped(examples: list[dict], block: int) -> list[dict]:
    """``examples`` (training order) with each block sorted by :func:`pair_length`, longest first
    (stable: equal lengths keep their order)."""
    if block <= 0:
        return list(examples)
    out: list[dict] = []
    for _, stage in groupby(examples, key=lambda e: e.get("stage", 0)):
        items = list(stage)
        for start in range(0, len(items), block):
            out.extend(sorted(items[start:start + block], key=pair_length, reverse=True))
    return out
