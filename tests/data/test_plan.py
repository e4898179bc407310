"""Routing (strict margin < tau) and curriculum ordering (stable on the original index)."""
from __future__ import annotations

from prefexp.data.records import PreferencePair
from prefexp.difficulty.plan import make_plan, order_indices, rating_margins


def pairs_with(margins):
    return [PreferencePair(i, [{"role": "user", "content": "q"}], "a", "b", 5.0 + m, 5.0) for i, m in enumerate(margins)]


def test_rating_margin_is_chosen_minus_rejected():
    assert rating_margins(pairs_with([0.5, 2.0])) == [0.5, 2.0]


def test_easy_to_hard_descending_and_stable():
    margins = [1.0, 3.0, 1.0, 0.0, 3.0]
    assert order_indices(margins, "easy_to_hard", 0) == [1, 4, 0, 2, 3]
    assert order_indices(margins, "hard_to_easy", 0) == [3, 0, 2, 1, 4]


def test_none_is_a_seeded_shuffle():
    margins = [float(i) for i in range(50)]
    a, b = order_indices(margins, "none", 1), order_indices(margins, "none", 1)
    assert a == b and sorted(a) == list(range(50)) and a != list(range(50))
    assert order_indices(margins, "none", 2) != a


def test_threshold_is_strict_and_routes_only_for_routing_losses():
    pairs = pairs_with([0.0, 0.5, 0.25, 1.0])
    plan = make_plan(pairs, rating_margins(pairs), "threshold", 0.5, "easy_to_hard", 0, "dpo", True)
    assert [(e.index, e.route) for e in plan] == [(3, "dpo"), (1, "dpo"), (2, "sft"), (0, "sft")]
    plan = make_plan(pairs, rating_margins(pairs), "threshold", 0.5, "easy_to_hard", 0, "dpo", False)
    assert {e.route for e in plan} == {"dpo"} and sum(e.difficult for e in plan) == 2
    plan = make_plan(pairs, rating_margins(pairs), "none", 0.5, "easy_to_hard", 0, "dpo", True)
    assert not any(e.difficult for e in plan)
