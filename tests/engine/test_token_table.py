"""Token ids as flat int32 arrays (prefexp/engine/token_table.py): a lossless round trip through the
.npz, inconsistent arrays refused, and every collator gives the same batch from the int32 views as
from plain lists (on arrays ``prompt + chosen`` would add the ids element-wise)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prefexp.cachefs import CacheCorrupt
from prefexp.engine.batching import PairCollator
from prefexp.engine.groups import GroupCollator
from prefexp.engine.packing import PackedPairCollator
from prefexp.engine.token_masks import chosen_token_logps
from prefexp.engine.token_table import TokenTable

# prompt and chosen of pair 7 have the same length (2), so an element-wise "+" would not even fail;
# pair 9 has an empty prompt (a segment of length 0)
EXAMPLES = [{"index": 7, "prompt_ids": [5, 6], "chosen_ids": [1, 2], "rejected_ids": [3, 4, 8]},
            {"index": 9, "prompt_ids": [], "chosen_ids": [11, 12, 13], "rejected_ids": [14]}]
GROUPS = [[[1, 2], [3, 4, 8], [9]], [[11, 12, 13], [14]]]


def as_lists(examples, groups):
    out = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in e.items()} for e in examples]
    return out, [[g.tolist() for g in group] for group in groups]


def test_round_trip_through_the_npz_is_exact(tmp_path):
    TokenTable.from_examples(EXAMPLES, GROUPS).save(tmp_path / "t.npz")
    table = TokenTable.load(tmp_path / "t.npz")
    assert table.ids.dtype == np.int32 and table.bounds.tolist() == [0, 2, 4, 7, 9, 12, 13, 13, 16, 17, 20, 21]
    examples, groups = table.examples()
    assert as_lists(examples, groups) == (EXAMPLES, GROUPS)
    plain, no_groups = TokenTable.from_examples(EXAMPLES).examples()
    assert as_lists(plain, no_groups) == (EXAMPLES, [[], []])


@pytest.mark.parametrize("field, value, why", [
    ("bounds", np.array([0, 2, 4], dtype=np.int64), "segments"),
    ("ids", np.arange(3, dtype=np.int64), "expected 1-d int32"),
    ("group_sizes", np.array([3], dtype=np.int32), "group sizes for 2 pairs"),
])
def test_inconsistent_arrays_are_refused(tmp_path, field, value, why):
    table = TokenTable.from_examples(EXAMPLES, GROUPS)
    setattr(table, field, value)
    table.save(tmp_path / "t.npz")
    with pytest.raises(CacheCorrupt, match=why):
        TokenTable.load(tmp_path / "t.npz")


def test_collators_give_the_same_batch_from_views_as_from_lists():
    examples, groups = TokenTable.from_examples(EXAMPLES, GROUPS).examples()
    grouped = [{**e, "group_ids": g, "group_positive": [True] + [False] * (len(g) - 1), "chosen_slot": 0,
                "rejected_slot": 1} for e, g in zip(examples, groups)]
    plain_grouped = [{**e, "group_ids": g, "group_positive": x["group_positive"], "chosen_slot": 0, "rejected_slot": 1}
                     for e, g, x in zip(EXAMPLES, GROUPS, grouped)]
    for collate, views, lists in ((PairCollator(0), examples, EXAMPLES), (PackedPairCollator(0), examples, EXAMPLES),
                                  (GroupCollator(0), grouped, plain_grouped)):
        got, want = collate(views), collate(lists)
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=f"{type(collate).__name__}: {key}")
    assert PairCollator(0)(examples)["input_ids"][0, :4].tolist() == [5, 6, 1, 2]  # joined, not added


def test_token_cleaning_scores_the_views_as_the_lists():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2))
    views, _ = TokenTable.from_examples(EXAMPLES).examples()
    got, want = chosen_token_logps(model, views, 0, 2), chosen_token_logps(model, EXAMPLES, 0, 2)
    assert got.keys() == want.keys() and all(torch.equal(got[i], want[i]) for i in want)
