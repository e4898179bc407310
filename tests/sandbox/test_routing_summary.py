"""The routing summary's gold-disagreement table: rated order vs gold order, by margin bucket."""
from __future__ import annotations

from prefexp.data.records import PreferencePair
from prefexp.difficulty.plan import gold_disagreement, make_plan, rating_margins, summarize
from prefexp.difficulty.router import RouterSpec


def pair(i: int, margin: float, gold_chosen: float, gold_rejected: float) -> PreferencePair:
    return PreferencePair(i, [{"role": "user", "content": "q"}], f"a{i}", f"b{i}", 5.0 + margin, 5.0,
                          extra={"gold_chosen": gold_chosen, "gold_rejected": gold_rejected})


# margin, gold chosen, gold rejected -> bucket [0, .5): 3 pairs, 1 wrong, 1 gold tie;
# [.5, 1): 1 pair, 1 wrong; [2, 3): 2 pairs, 0 wrong.
PAIRS = [pair(0, 0.0, 7.0, 10.0), pair(1, 0.0, 10.0, 10.0), pair(2, 0.0, 10.0, 7.0), pair(3, 0.5, 4.0, 7.0),
         pair(4, 2.0, 10.0, 4.0), pair(5, 2.5, 10.0, 1.0)]


def test_disagreement_by_bucket_by_hand():
    spec = RouterSpec("threshold", 0.5)
    kept, discarded = make_plan(PAIRS, rating_margins(PAIRS), spec, "easy_to_hard", 0, "dpo", True)
    table = summarize(kept, discarded, spec, "rating", "easy_to_hard", pairs=PAIRS)["gold_disagreement"]
    rows = {(b["low"], b["high"]): (b["pairs"], b["disagree"], b["gold_ties"], b["share"]) for b in table}
    assert rows[(0.0, 0.5)] == (3, 1, 1, 1 / 3)
    assert rows[(0.5, 1.0)] == (1, 1, 0, 1.0)
    assert rows[(2.0, 3.0)] == (2, 0, 0, 0.0)
    assert rows[(None, 0.0)] == (0, 0, 0, None) and rows[(5.0, None)] == (0, 0, 0, None)  # open ends
    assert sum(b["pairs"] for b in table) == len(PAIRS)


def test_no_gold_no_table():
    plain = [PreferencePair(0, [{"role": "user", "content": "q"}], "a", "b", 6.0, 5.0)]
    assert gold_disagreement([], plain) is None
    spec = RouterSpec("none", 0.5)
    kept, discarded = make_plan(plain, rating_margins(plain), spec, "none", 0, "dpo", False)
    assert summarize(kept, discarded, spec, "rating", "none")["gold_disagreement"] is None
