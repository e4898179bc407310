"""Synthetic preference rows: determinism, pair invariants and the label-noise profile."""
from __future__ import annotations

import math

import pytest

from prefexp.sandbox.data import build_sandbox_rows, heldout_prompts, label_noise_report
from prefexp.sandbox.task import gold_score

KEYS = {"prompt", "chosen", "rejected", "score_chosen", "score_rejected", "gold_chosen", "gold_rejected",
        "responses", "rater_scores", "gold_scores"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return build_sandbox_rows(2000, seed=0)  # the default dataset config's size


def test_deterministic_and_seed_dependent(rows):
    assert build_sandbox_rows(200, seed=0) == rows[:200]  # same seed, and rows are prefix-stable
    other = build_sandbox_rows(200, seed=1)
    assert other != rows[:200]
    assert [r["prompt"] for r in other] != [r["prompt"] for r in rows[:200]]


def test_row_fields_and_pair_invariants(rows):
    for r in rows:
        assert set(r) == KEYS
        k = len(r["responses"])
        assert k == 4 and len(r["rater_scores"]) == k and len(r["gold_scores"]) == k
        assert len(set(r["responses"])) == k
        assert r["chosen"] != r["rejected"]
        assert r["score_chosen"] >= r["score_rejected"]
        # chosen = best rated, ties to the lowest index
        best = max(range(k), key=lambda i: (r["rater_scores"][i], -i))
        assert r["chosen"] == r["responses"][best] and r["score_chosen"] == r["rater_scores"][best]
        assert r["gold_chosen"] == gold_score(r["prompt"], r["chosen"])
        assert r["gold_rejected"] == gold_score(r["prompt"], r["rejected"])
        assert all(1.0 <= s <= 10.0 and (2 * s).is_integer() for s in r["rater_scores"])  # halves


def test_small_margin_share_and_mislabelled_pairs(rows):
    """At tau=0.5, 10-20% of pairs are 'hard', and the rater got some of those wrong."""
    small = [r for r in rows if r["score_chosen"] - r["score_rejected"] < 0.5]
    assert 0.10 <= len(small) / len(rows) <= 0.20
    assert any(r["gold_chosen"] < r["gold_rejected"] for r in small)
    # the rater is better than chance overall: most pairs agree with gold
    assert sum(r["gold_chosen"] < r["gold_rejected"] for r in rows) / len(rows) < 0.2


def test_best_vs_worst_and_k():
    for r in build_sandbox_rows(200, seed=0, responses_per_prompt=3, pair_rule="best_vs_worst"):
        assert len(r["responses"]) == 3 and r["chosen"] != r["rejected"]
        others = [s for s, t in zip(r["rater_scores"], r["responses"]) if t != r["chosen"]]
        assert r["score_rejected"] == min(others)


def test_noise_free_unbiased_rater_never_mislabels():
    rows = build_sandbox_rows(300, seed=0, rater_noise=0.0, length_bias=0.0)
    # rounding to halves only: golds within one half-point may tie and be ordered by index
    assert all(r["gold_chosen"] > r["gold_rejected"] - 0.5 for r in rows)


def test_label_noise_report(rows):
    report = label_noise_report(rows, buckets=[0.0, 0.5, 2.0, math.inf])
    assert [(b["low"], b["high"]) for b in report] == [(0.0, 0.5), (0.5, 2.0), (2.0, math.inf)]
    assert sum(b["pairs"] for b in report) == len(rows)
    small = [r for r in rows if r["score_chosen"] - r["score_rejected"] < 0.5]
    assert report[0]["pairs"] == len(small)
    assert report[0]["mislabelled"] == sum(r["gold_chosen"] < r["gold_rejected"] for r in small)
    # MixDPO's premise: small rating margins are noisier than large ones
    assert report[0]["share"] > report[-1]["share"]
    assert label_noise_report([], buckets=[0, 1])[0]["share"] is None


@pytest.mark.parametrize("kwargs, match", [
    ({"responses_per_prompt": 1}, "responses_per_prompt"),
    ({"pair_rule": "best_vs_second"}, "pair_rule"),
    ({"rater_noise": -1.0}, "rater_noise"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_sandbox_rows(10, seed=0, **kwargs)


def test_heldout_prompts_not_in_rows(rows):
    assert not {r["prompt"] for r in rows} & set(heldout_prompts(200, seed=1234))
