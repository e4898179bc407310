"""Routing (strict margin < tau, quantile, band, actions) and curriculum ordering."""
from __future__ import annotations

import pytest

from prefexp.data.records import PreferencePair
from prefexp.difficulty.plan import make_plan, order_indices, rating_margins, summarize
from prefexp.difficulty.router import RouterSpec, select


def pairs_with(margins):
    return [PreferencePair(i, [{"role": "user", "content": "q"}], "a", "b", 5.0 + m, 5.0) for i, m in enumerate(margins)]


def test_rating_margin_is_chosen_minus_rejected():
    assert rating_margins(pairs_with([0.5, 2.0])) == [0.5, 2.0]


def test_easy_to_hard_descending_with_seeded_ties():
    margins = [1.0, 3.0, 1.0, 0.0, 3.0]
    for seed in range(5):
        order = order_indices(margins, "easy_to_hard", seed)
        assert sorted(order[:2]) == [1, 4] and sorted(order[2:4]) == [0, 2] and order[4] == 3
        assert order_indices(margins, "easy_to_hard", seed) == order  # the seed fixes it
        backward = order_indices(margins, "hard_to_easy", seed)
        assert backward[0] == 3 and sorted(backward[1:3]) == [0, 2] and sorted(backward[3:]) == [1, 4]


def test_the_seed_orders_ties_and_only_ties():
    margins = [float(i // 10) for i in range(100)]  # 10 tied groups of 10
    orders = {tuple(order_indices(margins, "easy_to_hard", seed)) for seed in range(4)}
    assert len(orders) == 4  # ties in a different order for each seed ...
    for order in orders:  # ... and the margins always descending
        assert [margins[i] for i in order] == sorted(margins, reverse=True)


def test_none_is_a_seeded_shuffle():
    margins = [float(i) for i in range(50)]
    a, b = order_indices(margins, "none", 1), order_indices(margins, "none", 1)
    assert a == b and sorted(a) == list(range(50)) and a != list(range(50))
    assert order_indices(margins, "none", 2) != a


def test_threshold_is_strict_and_routes_only_for_routing_losses():
    pairs = pairs_with([0.0, 0.5, 0.25, 1.0])
    spec = RouterSpec("threshold", 0.5)
    kept, discarded = make_plan(pairs, rating_margins(pairs), spec, "easy_to_hard", 0, "dpo", True)
    assert [(e.index, e.route) for e in kept] == [(3, "dpo"), (1, "dpo"), (2, "sft"), (0, "sft")] and not discarded
    kept, _ = make_plan(pairs, rating_margins(pairs), spec, "easy_to_hard", 0, "dpo", False)
    assert {e.route for e in kept} == {"dpo"} and not any(e.difficult for e in kept)
    kept, _ = make_plan(pairs, rating_margins(pairs), RouterSpec("none", 0.5), "easy_to_hard", 0, "dpo", True)
    assert not any(e.difficult for e in kept)


def test_quantile_selects_hardest_fraction_with_index_tiebreak():
    margins = [2.0, 0.0, 1.0, 0.0, 3.0, 1.0, 5.0, 4.0, 0.5, 6.0]
    assert select(margins, RouterSpec("quantile", 0.2)) == [i in (1, 3) for i in range(10)]
    assert sum(select(margins, RouterSpec("quantile", 0.35))) == 3  # floor(3.5): 0, 0, then 0.5
    assert select(margins, RouterSpec("quantile", 0.35))[8]


def test_band_discards_outside_and_weight_action():
    pairs = pairs_with([0.0, 1.0, 2.0, 9.0])
    kept, discarded = make_plan(pairs, rating_margins(pairs), RouterSpec("band", 0.5, 0.5, 5.0, on_selected="discard"),
                                "easy_to_hard", 0, "dpo", False)
    assert [e.index for e in kept] == [2, 1] and sorted(e.index for e in discarded) == [0, 3]
    summary = summarize(kept, discarded, RouterSpec("band", 0.5, 0.5, 5.0), "rating", "easy_to_hard")
    assert summary["routes"] == {"dpo": 2, "discard": 2} and summary["band"] == [0.5, 5.0]
    spec = RouterSpec("threshold", 1.5, on_selected="weight", selected_weight=0.25)
    kept, _ = make_plan(pairs, rating_margins(pairs), spec, "hard_to_easy", 0, "dpo", True)
    assert [(e.index, e.weight) for e in kept] == [(0, 0.25), (1, 0.25), (2, 1.0), (3, 1.0)]


def test_missing_margin_is_an_error():
    with pytest.raises(ValueError, match="needs a margin"):
        select([1.0, None], RouterSpec("threshold", 0.5))


def test_difficulty_cut_gives_tau_one_meaning_per_router():
    """The probes' difficult label: tau where tau is a margin; under quantile (tau a fraction) the
    margin at the tau-quantile, so at most that fraction of pairs is below it (ties count as easy)."""
    from prefexp.difficulty.router import difficulty_cut

    margins = [3.0, 0.0, 1.0, None, 2.0, 0.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # 10 known margins
    for name in ("threshold", "random", "band", "none"):
        assert difficulty_cut(RouterSpec(name, 0.3), margins) == 0.3
    quantile = RouterSpec("quantile", 0.3)
    cut = difficulty_cut(quantile, margins)
    assert cut == 2.0  # sorted known: 0 0 1 | 2 ...: the 3 hardest (30 %) lie below it
    known = [m for m in margins if m is not None]
    assert sum(m < cut for m in known) == 3 == sum(select(known, quantile))
    assert difficulty_cut(RouterSpec("quantile", 0.5), [1.0, 1.0, 1.0, 1.0]) == 1.0  # ties: none below
    assert difficulty_cut(RouterSpec("quantile", 0.5), []) == float("inf")
