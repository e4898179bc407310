"""K responses per prompt for multi-response losses (``needs_groups``: MaxNeg-MinPos and its smooth form).

A group is every rated response of a prompt (the sandbox's four, UltraFeedback's completions):
``pair.extra["responses"]`` and ``["rater_scores"]``. Labels come from ``dataset.group_positive``
(``best``: the top-rated responses are positive; ``threshold``: rating >= group_positive_min).
A group with no positive or no negative response has no contrast to learn from; it is left out,
counted and logged (never silently).

The batch holds one row per real response (no padding rows): ``group_rows`` [N] gives each
row's slot ``b * K_max + k`` in the dense [B, K_max] layout the loss takes, ``group_mask`` marks
real slots. The pair's own chosen / rejected responses keep their slots (``chosen_slot``,
``rejected_slot``), so the usual pair diagnostics and pair inputs still exist.
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch

from ..data.groups import group_positive_labels
from ..data.records import PreferencePair
from .batching import padded_rows, pair_fields, token_row
from .tokenize import response_ids

log = logging.getLogger(__name__)


def has_groups(pairs: Sequence[PreferencePair]) -> bool:
    return all(len(p.extra.get("responses") or []) >= 2 and p.extra.get("rater_scores") for p in pairs)


def keep_contrastive_groups(pairs: Sequence[PreferencePair], positive_rule: str,
                            positive_min: float | None) -> tuple[list[PreferencePair], int]:
    """(pairs whose group has a positive and a negative response, number left out)."""
    kept = []
    for pair in pairs:
        labels = group_positive_labels(pair.extra["rater_scores"], positive_rule, positive_min)
        if any(labels) and not all(labels):
            kept.append(pair)
    dropped = len(pairs) - len(kept)
    if dropped:
        log.warning("left out %d of %d group(s) with no positive or no negative response "
                    "(dataset.group_positive=%s)", dropped, len(pairs), positive_rule)
    if not kept:
        raise ValueError(f"no group has both a positive and a negative response under "
                         f"dataset.group_positive={positive_rule}; change the rule or dataset.group_positive_min")
    return kept, dropped


def add_groups(examples: list[dict], pairs: Sequence[PreferencePair], tokenizer, max_length: int,
               positive_rule: str, positive_min: float | None) -> list[dict]:
    """Attach ``group_ids``, ``group_positive``, ``chosen_slot``, ``rejected_slot`` to each example.

    Responses are truncated like pair responses (to ``max_length`` minus the example's prompt).
    """
    group_ids = group_response_ids(examples, pairs, tokenizer, max_length)
    return attach_groups(examples, pairs, group_ids, positive_rule, positive_min)


def group_response_ids(examples: Sequence[dict], pairs: Sequence[PreferencePair], tokenizer,
                       max_length: int) -> list[list[list[int]]]:
    """The token ids of every response of each example's group (the tokenizer's part of :func:`add_groups`)."""
    by_index = {p.index: p for p in pairs}
    out = []
    for example in examples:
        room = max(1, max_length - len(example["prompt_ids"]))
        out.append([response_ids(tokenizer, r)[:room] for r in by_index[example["index"]].extra["responses"]])
    return out


def attach_groups(examples: Sequence[dict], pairs: Sequence[PreferencePair], group_ids: Sequence[Sequence],
                  positive_rule: str, positive_min: float | None) -> list[dict]:
    """:func:`add_groups` with the response ids given (tokenised now or read from the token cache);
    labels and slots come from the pairs' ratings and texts, so they are never cached."""
    by_index = {p.index: p for p in pairs}
    out = []
    for example, ids in zip(examples, group_ids, strict=True):
        pair = by_index[example["index"]]
        responses = pair.extra["responses"]
        out.append({**example, "group_ids": list(ids),
                    "group_positive": group_positive_labels(pair.extra["rater_scores"], positive_rule, positive_min),
                    "chosen_slot": _slot(responses, pair.chosen, pair.index, "chosen"),
                    "rejected_slot": _slot(responses, pair.rejected, pair.index, "rejected")})
    return out


def _slot(responses: list[str], text: str, index: int, side: str) -> int:
    for k, response in enumerate(responses):
        if response.strip() == text.strip():
            return k
    raise ValueError(f"row {index}: the {side} response is not one of the row's 'responses'")


def group_reference_examples(examples: Sequence[dict], width: int) -> list[dict]:
    """One pseudo pair per (group, response), so the cached pair reference pass scores every
    response: index = ``index * width + k``, chosen = rejected = response k (``width`` >= every K)."""
    return [{"index": e["index"] * width + k, "prompt_ids": e["prompt_ids"], "chosen_ids": ids, "rejected_ids": ids}
            for e in examples for k, ids in enumerate(e["group_ids"])]


class GroupCollator:
    """[N, T] rows (every response of every group) plus the [B, K_max] layout tensors."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        width = max(len(e["group_ids"]) for e in examples)  # K_max
        rows, starts, slots = [], [], []
        for b, e in enumerate(examples):
            for k, ids in enumerate(e["group_ids"]):
                rows.append(token_row(e["prompt_ids"], ids))
                starts.append(len(e["prompt_ids"]))
                slots.append(b * width + k)
        positive = torch.zeros((len(examples), width), dtype=torch.bool)  # [B, K]
        mask = torch.zeros((len(examples), width), dtype=torch.bool)  # [B, K]
        for b, e in enumerate(examples):
            positive[b, : len(e["group_positive"])] = torch.tensor(e["group_positive"])
            mask[b, : len(e["group_ids"])] = True
        batch = {**padded_rows(rows, starts, self.pad_token_id),  # [N, T]
                 "group_rows": torch.tensor(slots), "group_positive": positive, "group_mask": mask,
                 "chosen_slot": torch.tensor([e["chosen_slot"] for e in examples]),
                 "rejected_slot": torch.tensor([e["rejected_slot"] for e in examples])}
        if "group_reference_logps" in examples[0]:
            ref = torch.zeros((len(examples), width), dtype=torch.float32)
            for b, e in enumerate(examples):
                ref[b, : len(e["group_reference_logps"])] = torch.tensor(e["group_reference_logps"])
            batch["group_reference_logps"] = ref
        batch.update(pair_fields(examples))
        return batch


def dense_groups(values: torch.Tensor, batch: dict) -> torch.Tensor:
    """Row values [N] -> [B, K_max] (0 in unused slots) by ``group_rows``."""
    b, k = batch["group_mask"].shape
    out = torch.zeros(b * k, dtype=values.dtype, device=values.device)
    return out.index_copy(0, batch["group_rows"].to(values.device), values).view(b, k)
