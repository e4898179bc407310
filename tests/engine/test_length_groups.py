"""Length-grouped blocks (trainer.length_group_block): longest first within each block of the
plan's order, never across a curriculum stage; off (0) the plan's order exactly."""
from __future__ import annotations

import pytest

from prefexp.config.settings import ConfigError
from prefexp.setup.validate import validate
from prefexp.engine.length_groups import length_grouped, pair_length
from tests.conftest import compose


def ex(index: int, prompt: int, chosen: int, rejected: int, stage: int = 0) -> dict:
    return {"index": index, "prompt_ids": [1] * prompt, "chosen_ids": [2] * chosen, "rejected_ids": [3] * rejected,
            "stage": stage}


def padding(examples: list[dict], batch: int) -> int:
    """Pad positions of micro-batches padded to their longest pair."""
    lengths = [pair_length(e) for e in examples]
    return sum(max(b) * len(b) - sum(b) for b in (lengths[i:i + batch] for i in range(0, len(lengths), batch)))


def test_longest_first_within_blocks_and_less_padding():
    """Lengths 3, 9, 4, 8 | 5, 7: block 4 -> 9, 8, 4, 3 | 7, 5. Micro-batches of 2 pad
    6 + 4 + 2 = 12 positions in plan order, 1 + 1 + 2 = 4 grouped."""
    plan = [ex(0, 1, 2, 1), ex(1, 4, 5, 3), ex(2, 2, 1, 2), ex(3, 3, 5, 5), ex(4, 2, 3, 3), ex(5, 3, 4, 1)]
    assert [pair_length(e) for e in plan] == [3, 9, 4, 8, 5, 7]
    grouped = length_grouped(plan, 4)
    assert [e["index"] for e in grouped] == [1, 3, 2, 0, 5, 4]
    assert (padding(plan, 2), padding(grouped, 2)) == (12, 4)
    assert length_grouped(plan, 0) == plan


def test_a_block_never_crosses_a_stage_and_ties_keep_their_order():
    plan = [ex(0, 1, 1, 1, stage=0), ex(1, 5, 5, 5, stage=0), ex(2, 9, 9, 9, stage=1), ex(3, 1, 1, 1, stage=1),
            ex(4, 1, 1, 1, stage=1)]
    assert [e["index"] for e in length_grouped(plan, 8)] == [1, 0, 2, 3, 4]


def test_a_block_too_small_to_group_is_refused():
    with pytest.raises(ConfigError, match=r"trainer.length_group_block=8 must be 0 \(off\) or at least two micro-batches \(>= 16\)"):
        validate(compose(["trainer.per_device_batch_size=8", "trainer.length_group_block=8"]))
    assert validate(compose(["trainer.per_device_batch_size=8", "trainer.length_group_block=16"])).config.trainer.length_group_block == 16
