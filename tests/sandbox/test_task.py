"""The sandbox task: prompts, gold answers and the gold scorer, with hand-computed values."""
from __future__ import annotations

import random

import pytest

from prefexp.sandbox.data import heldout_prompts
from prefexp.sandbox.task import KINDS, gold_answer, gold_score, is_heldout, make_prompts, parse_prompt


@pytest.mark.parametrize("prompt, answer", [
    ("sort: 7 3 9 1", "1 3 7 9"),
    ("reverse: k e y", "y e k"),
    ("add: 23 + 45", "68"),
    ("max: 4 8 2", "8"),
    ("max: 42 7 19", "42"),
    ("count a: banana", "3"),
    ("count z: banana", "0"),
])
def test_gold_answer(prompt, answer):
    assert gold_answer(prompt) == answer


@pytest.mark.parametrize("prompt, response, expected", [
    # exact answers: 10
    ("sort: 7 3 9 1", "1 3 7 9", 10.0),
    ("add: 23 + 45", "68", 10.0),
    ("reverse: k e y", "y e k", 10.0),
    # one error = 10 - 3: an adjacent swap, a missing, an extra, a wrong item, a wrong digit
    ("sort: 7 3 9 1", "1 3 9 7", 7.0),
    ("sort: 7 3 9 1", "1 3 7", 7.0),
    ("sort: 7 3 9 1", "1 3 7 9 9", 7.0),
    ("sort: 7 3 9 1", "1 3 7 8", 7.0),
    ("add: 23 + 45", "67", 7.0),
    ("count a: banana", "4", 7.0),
    # two errors: 42 -> 19 is two wrong digits
    ("max: 42 7 19", "19", 4.0),
    # filler: 3 words are free, each further word costs 0.15
    ("add: 23 + 45", "The answer is 68.", 10.0),
    ("sort: 7 3 9 1", "Sure! Here it is: 1 3 7 9", 9.85),  # 4 filler words
    ("sort: 7 3 9 1", "Let me work this out. The answer is 1 3 7 9 Hope this helps!", 8.8),  # 11 words
    ("sort: 7 3 9 1", "Sure! Here it is: 1 3 9 7", 6.85),  # filler + one swap
    # a repeated number is extra items: "68 68" -> 6 8 _ 6 8, three extra
    ("add: 23 + 45", "68 68", 1.0),
    # garbage and empty: no answer item at all -> 1.0
    ("sort: 7 3 9 1", "", 1.0),
    ("sort: 7 3 9 1", "   \n ", 1.0),
    ("sort: 7 3 9 1", "I cannot help with that.", 1.0),
    ("reverse: k e y", "yek", 1.0),  # not space separated: no single-letter items
    ("sort: 7 3 9 1", "1 1 1 1 1 1 1 1 1", 1.0),  # clipped at 1
])
def test_gold_score_by_hand(prompt, response, expected):
    assert gold_score(prompt, response) == pytest.approx(expected)


def test_gold_score_never_raises_on_garbage():
    rng = random.Random(0)
    alphabet = "abc xyz 0123456789 !?.,:\n\t<|>eos éü€"
    prompts = make_prompts(50, seed=3)
    for i in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        score = gold_score(prompts[i % 50], text)
        assert 1.0 <= score <= 10.0
    assert 1.0 <= gold_score(prompts[0], "9 " * 5000) <= 10.0  # runaway generation stays cheap


def test_gold_answer_scores_ten_for_every_kind():
    prompts = make_prompts(300, seed=0)
    assert {parse_prompt(p)[0] for p in prompts} == set(KINDS)
    assert all(gold_score(p, gold_answer(p)) == 10.0 for p in prompts)


def test_bad_prompt_raises():
    with pytest.raises(ValueError, match="not a sandbox prompt"):
        gold_answer("translate: hello")


def test_make_prompts_deterministic_distinct_and_prefix_stable():
    a = make_prompts(500, seed=0)
    assert a == make_prompts(500, seed=0)
    assert a != make_prompts(500, seed=1)
    assert len(set(a)) == 500
    assert make_prompts(100, seed=0) == a[:100]


def test_heldout_prompts_are_disjoint_from_training_prompts():
    train = set(make_prompts(3000, seed=0)) | set(make_prompts(3000, seed=1234))
    held = heldout_prompts(300, seed=1234)
    assert len(set(held)) == 300 and all(is_heldout(p) for p in held)
    assert not train & set(held)
    assert held == heldout_prompts(300, seed=1234)
