"""Gold composition of the pairs (routing_summary.json 'gold_composition'), derived by hand."""
from __future__ import annotations

from prefexp.data.records import PreferencePair
from prefexp.difficulty.plan import gold_composition, make_plan, rating_margins
from prefexp.difficulty.router import RouterSpec
from prefexp.sandbox.pair_labels import KINDS, gold_label, gold_labels
from prefexp.sandbox.task import gold_score

P = "add: 23 + 45"  # gold answer 68


def test_labels_by_hand():
    # 68 (10) vs 67 (7): right; reversed: wrong; 67 vs "67 ok" (both 7, same answer): tie_equal;
    # 67 vs 69 (both 7, different wrong answers): tie_different
    assert gold_label(P, "68", "67", 10.0, 7.0).kind == "correct"
    assert gold_label(P, "67", "68", 7.0, 10.0).kind == "mislabelled"
    assert gold_label(P, "67", "the answer 67", 7.0, 7.0).kind == "tie_equal"
    assert gold_label(P, "67", "69", 7.0, 7.0).kind == "tie_different"
    assert gold_label(P, "it is 68.", "67", 10.0, 7.0).chosen_exact
    assert not gold_label(P, "67", "68", 7.0, 10.0).chosen_exact


def pair(i: int, margin: float, chosen: str, rejected: str) -> PreferencePair:
    return PreferencePair(i, [{"role": "user", "content": P}], chosen, rejected, 5.0 + margin, 5.0,
                          extra={"gold_chosen": gold_score(P, chosen), "gold_rejected": gold_score(P, rejected)})


def test_composition_by_bucket_and_route():
    # margins 0, 0.2, 0.3 -> [0, .5) routed to sft at tau 0.5; 2.0 -> [2, 3) dpo
    pairs = [pair(0, 0.0, "67", "69"), pair(1, 0.2, "67", "68"), pair(2, 0.3, "68", "68 ok"),
             pair(3, 2.0, "68", "12")]
    kept, discarded = make_plan(pairs, rating_margins(pairs), RouterSpec("threshold", 0.5), "easy_to_hard", 0,
                                "dpo", True)
    table = gold_composition([*kept, *discarded], gold_labels(pairs), KINDS)
    low = next(b for b in table["by_margin"] if b["low"] == 0.0)
    assert (low["pairs"], low["correct"], low["mislabelled"], low["tie_equal"], low["tie_different"]) == (3, 0, 1, 1, 1)
    assert low["chosen_exact"] == 1 and low["share_chosen_exact"] == 1 / 3
    routes = {r["route"]: r for r in table["by_route"]}
    assert routes["sft"]["pairs"] == 3 and routes["sft"]["share_tie_different"] == 1 / 3
    assert (routes["dpo"]["pairs"], routes["dpo"]["correct"], routes["dpo"]["share_correct"]) == (1, 1, 1.0)
    empty = next(b for b in table["by_margin"] if b["low"] == 5.0)
    assert empty["pairs"] == 0 and empty["share_correct"] is None and empty["high"] is None
