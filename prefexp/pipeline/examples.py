"""Stage 6, training examples: token ids + reference log-probs + masks, in the plan's order, each
with its route (``difficult``), margin and weight for the loss."""
from __future__ import annotations

from typing import Optional, Sequence

from ..difficulty.plan import PlanEntry
from ..engine.length_groups import length_grouped
from .reference import ReferenceLogps
from .tokens import TokenisedPairs


def training_examples(tokens: TokenisedPairs, reference: Optional[ReferenceLogps],
                      masks: Optional[dict[int, list[int]]], plan: Sequence[PlanEntry],
                      length_group_block: int = 0) -> list[dict]:
    """One dict per planned pair, in the plan's order; with ``length_group_block`` each block of
    that many (within a stage) longest first (``engine.length_groups``)."""
    by_index = {e["index"]: e for e in tokens.examples}
    examples = []
    for entry in plan:  # training order = plan order; discarded pairs are not in the plan
        example = dict(by_index[entry.index])
        if reference is not None:
            example["reference_chosen_logps"], example["reference_rejected_logps"] = reference.pairs[entry.index]
            if reference.groups is not None:
                example["group_reference_logps"] = reference.groups[entry.index]
        if masks is not None:
            example["clean_keep"] = masks[entry.index]
        margin = entry.loss_margin if entry.loss_margin is not None else entry.margin
        example["margins"] = margin if margin is not None else float("nan")
        example["difficult"] = entry.difficult
        example["pair_weights"] = entry.weight
        example["stage"] = entry.stage  # curriculum.stages (0 without); no collator reads it
        examples.append(example)
    return length_grouped(examples, length_group_block)
