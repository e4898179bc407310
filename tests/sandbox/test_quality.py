"""The reference check: per-task gold scores and constant answers, on hand-made answers."""
from __future__ import annotations

import pytest

from prefexp.sandbox.quality import MIN_REFERENCE_GOLD, reference_problems, reference_report

ADD = ["add: 10 + 20", "add: 11 + 22", "add: 40 + 15", "add: 12 + 12"]  # gold 30, 33, 55, 24
SORT = ["sort: 3 1 2", "sort: 9 8", "sort: 5 4 6 1"]


def test_constant_answers_and_low_gold_are_flagged():
    """add answered "11" four times: every answer has 2 wrong digits (30 vs 11: 2 substitutions)
    -> gold 10 - 3 * 2 = 4 each; sort answered exactly -> 10 each. Mean (4 * 4 + 3 * 10) / 7 =
    6.571 (above the floor); add's top answer covers 4/4 = 100 % vs gold's 1/4 -> constant."""
    answers = ["11"] * 4 + ["1 2 3", "8 9", "1 4 5 6"]
    r = reference_report(ADD + SORT, answers)
    assert r["mean_gold_score"] == pytest.approx(46 / 7, rel=1e-12)
    assert r["by_task"]["add"]["mean_gold_score"] == 4.0 and r["by_task"]["sort"]["exact"] == 1.0
    assert r["by_task"]["add"]["top_answer"] == "11" and r["by_task"]["add"]["top_answer_share"] == 1.0
    assert r["exact"] == pytest.approx(3 / 7, rel=1e-12)
    assert len(r["problems"]) == 1 and "constant answers on add" in r["problems"][0]


def test_a_good_reference_passes_and_a_poor_one_fails_on_gold():
    good = reference_report(ADD + SORT, ["30", "33", "55", "24", "1 2 3", "8 9", "1 4 5 6"])
    assert good["mean_gold_score"] == 10.0 and good["problems"] == []
    # Distinct but wrong add answers (no constant) with 2 errors each: gold 4 < the floor.
    poor = reference_report(ADD, ["11", "12", "13", "13"])  # "24" vs "13": 2 errors too; top share 1/2
    assert poor["mean_gold_score"] == 4.0 < MIN_REFERENCE_GOLD
    assert reference_problems(poor) == poor["problems"] and len(poor["problems"]) == 1
    assert poor["problems"][0].startswith("mean gold score 4.00")


def test_shared_gold_answers_are_not_constant():
    """count prompts whose gold answers are all "2": answering "2" everywhere is right, not constant."""
    prompts = ["count a: abca", "count b: bxbq", "count c: cc", "count d: dd"]
    r = reference_report(prompts, ["2"] * 4)
    assert r["by_task"]["count"]["gold_top_answer_share"] == 1.0 and r["problems"] == []
