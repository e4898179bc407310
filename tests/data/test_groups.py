"""Multi-response groups -> pairs: the three pair rules, positive labels, openbmb/UltraFeedback rows."""
from __future__ import annotations

import json
import logging
import random

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from prefexp.config.schema import DatasetConfig
from prefexp.data.groups import check_group_settings, expand_groups, group_positive_labels, pairs_from_group
from prefexp.data.records import InvalidRowError, to_pairs
from prefexp.data.sources import load_rows
from prefexp.data.ultrafeedback_raw import ultrafeedback_raw_to_group
from tests.conftest import compose

RESPONSES = ["a", "b", "c", "d"]
SCORES = [7.0, 9.0, 3.0, 9.0]  # b and d tie for best (b wins: lower position); c is the worst


def chosen_rejected(rows: list[dict]) -> list[tuple]:
    return [(r["chosen"], r["rejected"], r["score_chosen"], r["score_rejected"]) for r in rows]


def test_best_vs_worst():
    rows = pairs_from_group("p", RESPONSES, SCORES, "best_vs_worst", random.Random(0))
    assert chosen_rejected(rows) == [("b", "c", 9.0, 3.0)]
    assert rows[0]["prompt"] == "p" and rows[0]["responses"] == RESPONSES and rows[0]["rater_scores"] == SCORES


def test_best_vs_worst_ties_take_the_lowest_position():
    rows = pairs_from_group("p", RESPONSES, [8.0, 2.0, 5.0, 2.0], "best_vs_worst", random.Random(0))
    assert chosen_rejected(rows) == [("a", "b", 8.0, 2.0)]


def test_best_vs_random_picks_each_other_response_and_never_the_best():
    picks = [pairs_from_group("p", RESPONSES, SCORES, "best_vs_random", random.Random(s))[0] for s in range(300)]
    assert {r["chosen"] for r in picks} == {"b"}
    counts = {t: sum(r["rejected"] == t for r in picks) for t in ("a", "c", "d")}
    assert sum(counts.values()) == 300 and min(counts.values()) > 60, counts  # ~100 each if uniform
    # the documented draw: one rng.choice over the other positions, in position order
    (row,) = pairs_from_group("p", RESPONSES, SCORES, "best_vs_random", random.Random("x"))
    assert row["rejected"] == RESPONSES[random.Random("x").choice([0, 2, 3])]


def test_all_in_band_bounds_are_inclusive_and_ordered_by_i_then_j():
    rows = pairs_from_group("p", RESPONSES, SCORES, "all_in_band", random.Random(0), band_low=2.0, band_high=4.0)
    # margins: a>c 4, b>a 2, b>c 6, d>a 2, d>c 6; 2 and 4 sit exactly on the bounds
    assert chosen_rejected(rows) == [("a", "c", 7.0, 3.0), ("b", "a", 9.0, 7.0), ("d", "a", 9.0, 7.0)]
    unbounded = pairs_from_group("p", RESPONSES, SCORES, "all_in_band", random.Random(0))
    assert [(r["chosen"], r["rejected"]) for r in unbounded] == [("a", "c"), ("b", "a"), ("b", "c"), ("d", "a"), ("d", "c")]
    high_only = pairs_from_group("p", RESPONSES, SCORES, "all_in_band", random.Random(0), band_high=2.0)
    assert [(r["chosen"], r["rejected"]) for r in high_only] == [("b", "a"), ("d", "a")]
    assert pairs_from_group("p", RESPONSES, SCORES, "all_in_band", random.Random(0), 2.5, 3.5) == []


@pytest.mark.parametrize("rule", ["best_vs_random", "best_vs_worst", "all_in_band"])
def test_all_tied_group_gives_no_pair(rule):
    assert pairs_from_group("p", RESPONSES, [5.0] * 4, rule, random.Random(0)) == []


def test_identical_texts_are_never_paired():
    responses = ["x", " x ", "y", "z"]
    rows = pairs_from_group("p", responses, [8.0, 1.0, 5.0, 2.0], "best_vs_worst", random.Random(0))
    assert chosen_rejected(rows) == [("x", "z", 8.0, 2.0)]  # " x " (1.0) would be the worst
    for seed in range(50):
        (row,) = pairs_from_group("p", responses, [8.0, 1.0, 5.0, 2.0], "best_vs_random", random.Random(seed))
        assert row["rejected"] in ("y", "z")
    band = pairs_from_group("p", ["x", " x", "y"], [8.0, 1.0, 5.0], "all_in_band", random.Random(0))
    assert [(r["chosen"], r["rejected"]) for r in band] == [("x", "y"), ("y", " x")]


def group(prompt: str, scores: list[float]) -> dict:
    return {"prompt": prompt, "responses": [f"{prompt}-{k}" for k in range(len(scores))], "rater_scores": scores}


def test_expand_groups_counts_groups_without_a_pair(caplog):
    rows = [group("p0", [5.0, 5.0, 5.0]), group("p1", [1.0, 4.0, 2.0]), group("p2", [3.0, 3.0])]
    with caplog.at_level(logging.INFO, logger="prefexp.data.groups"):
        pairs = expand_groups(rows, "best_vs_worst", 0, None, None, "mem")
    assert chosen_rejected(pairs) == [("p1-1", "p1-0", 4.0, 1.0)]
    assert "mem: 3 group(s) gave 1 pair(s)" in caplog.text
    assert "mem: 2 of 3 group(s) gave no pair" in caplog.text


def test_expand_groups_is_seeded_per_row():
    rows = [group(f"p{n}", [9.0, 1.0, 2.0, 3.0, 4.0, 5.0]) for n in range(20)]
    first = expand_groups(rows, "best_vs_random", 7, None, None, "mem")
    assert first == expand_groups(rows, "best_vs_random", 7, None, None, "mem")
    assert [r["rejected"] for r in first] == [
        f"p{n}-{random.Random(f'pairs-7-{n}').choice([1, 2, 3, 4, 5])}" for n in range(20)]
    other_seed = expand_groups(rows, "best_vs_random", 8, None, None, "mem")
    assert [r["rejected"] for r in other_seed] != [r["rejected"] for r in first]
    # changing (or removing the pairs of) row 0 leaves every later row's pick unchanged
    changed = expand_groups([group("q", [1.0, 1.0]), *rows[1:]], "best_vs_random", 7, None, None, "mem")
    assert changed == first[1:]


def test_group_positive_labels():
    assert group_positive_labels(SCORES, "best") == [False, True, False, True]
    assert group_positive_labels(SCORES, "threshold", positive_min=7.0) == [True, True, False, True]
    assert group_positive_labels([5.0, 5.0], "best") == [True, True]  # returned, not raised
    assert group_positive_labels(SCORES, "threshold", positive_min=9.5) == [False] * 4
    with pytest.raises(ValueError, match="group_positive_min"):
        group_positive_labels(SCORES, "threshold")
    with pytest.raises(ValueError, match="dataset.group_positive='top'"):
        group_positive_labels(SCORES, "top")


@pytest.mark.parametrize("bad,reason", [
    ({"prompt": "p", "responses": ["x", "y"], "rater_scores": [1.0]}, "'responses' has 2 item(s) but 'rater_scores' has 1"),
    ({"prompt": "p", "responses": ["x"], "rater_scores": [1.0]}, "a group needs >= 2 responses, got 1"),
    ({"prompt": "p", "responses": ["x", "y"]}, "missing field 'rater_scores'"),
])
def test_bad_group_rows_raise_or_are_skipped(bad, reason, caplog):
    rows = [group("p0", [1.0, 2.0]), bad, group("p2", [3.0, 1.0])]
    with pytest.raises(InvalidRowError) as err:
        expand_groups(rows, "best_vs_worst", 0, None, None, "groups.jsonl")
    assert "groups.jsonl, row 2" in str(err.value) and reason in str(err.value)
    with caplog.at_level(logging.WARNING, logger="prefexp.data.groups"):
        pairs = expand_groups(rows, "best_vs_worst", 0, None, None, "groups.jsonl", on_invalid="skip")
    assert [p["chosen"] for p in pairs] == ["p0-1", "p2-0"]
    assert "groups.jsonl: skipped 1 invalid group row(s)" in caplog.text


def completion(text: str, overall, fine) -> dict:
    aspect = {"Rating": "4", "Rationale": "fine"}
    return {"model": "m", "principle": "helpfulness", "custom_system_prompt": "be helpful", "response": text,
            "annotations": {"helpfulness": aspect, "honesty": aspect, "instruction_following": aspect,
                            "truthfulness": aspect},
            "fine-grained_score": fine, "overall_score": overall, "critique": "ok"}


def raw_row(instruction: str, completions: list[dict]) -> dict:
    return {"source": "evol_instruct", "instruction": instruction, "models": [c["model"] for c in completions],
            "completions": completions, "correct_answers": ["None"], "incorrect_answers": ["None"]}


RAW_ROWS = [
    raw_row("Name a color.", [completion("Red.", 7.0, 4.25), completion("Blue.", 8.5, 3.5),
                              completion("Seven.", 2.0, 1.75), completion("Green!", 6.0, 4.5)]),
    # one blank response and one unscored completion are dropped: a group of 2 remains
    raw_row("Say hi.", [completion("Hi.", 9.0, 5.0), completion("   ", 10.0, 5.0),
                        completion("Hello.", None, None), completion("Bye.", 3.0, 2.0)]),
    raw_row("2+2?", [completion("4", 10.0, 5.0), completion("5", 1.0, 1.0),
                     completion("four", 9.0, 4.75), completion("22", 1.5, 1.0)]),
]


def raw_dataset(tmp_path, *overrides: str) -> DatasetConfig:
    path = tmp_path / "ultrafeedback_raw.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RAW_ROWS))
    return OmegaConf.to_object(compose(["dataset=ultrafeedback_raw", f"dataset.path={path}", *overrides]).dataset)


def test_ultrafeedback_raw_through_load_rows(tmp_path, caplog):
    dataset = raw_dataset(tmp_path, "dataset.pair_rule=best_vs_worst")
    assert (dataset.source, dataset.layout, dataset.score_key) == ("hf", "ultrafeedback_raw", "overall_score")
    with caplog.at_level(logging.INFO):
        rows = load_rows(dataset)
    assert chosen_rejected(rows) == [("Blue.", "Seven.", 8.5, 2.0), ("Hi.", "Bye.", 9.0, 3.0), ("4", "5", 10.0, 1.0)]
    assert rows[1]["responses"] == ["Hi.", "Bye."] and rows[1]["rater_scores"] == [9.0, 3.0]
    assert rows[0]["prompt"] == "Name a color." and rows[0]["rater_scores"] == [7.0, 8.5, 2.0, 6.0]
    assert "dropped 2 response(s)" in caplog.text
    pairs = to_pairs(rows, "uf", "error", require_scores=True)  # what the engine does next
    assert pairs[0].prompt == [{"role": "user", "content": "Name a color."}]
    assert pairs[0].extra["responses"] == ["Red.", "Blue.", "Seven.", "Green!"]


def test_ultrafeedback_raw_score_key_max_rows_and_default_rule(tmp_path):
    fine = load_rows(raw_dataset(tmp_path, "dataset.score_key=fine-grained_score", "dataset.pair_rule=best_vs_worst"))
    assert chosen_rejected(fine) == [("Green!", "Seven.", 4.5, 1.75), ("Hi.", "Bye.", 5.0, 2.0), ("4", "5", 5.0, 1.0)]
    two = load_rows(raw_dataset(tmp_path, "dataset.max_rows=2", "dataset.pair_rule=all_in_band"))
    # max_rows counts prompts: 6 pairs from prompt 0 (all scores differ) + 1 from prompt 1
    assert len(two) == 7 and {r["prompt"] for r in two} == {"Name a color.", "Say hi."}
    default = load_rows(raw_dataset(tmp_path))  # best_vs_random, pair_seed 0
    assert [r["chosen"] for r in default] == ["Blue.", "Hi.", "4"]
    assert default[0]["rejected"] == ["Red.", "Seven.", "Green!"][random.Random("pairs-0-0").choice([0, 1, 2])]


def test_ultrafeedback_raw_conversion_drops_nan_and_names_bad_rows():
    row = raw_row("q", [completion("x", float("nan"), 1.0), completion("y", 4.0, 1.0), completion("z", 2.0, 1.0)])
    assert ultrafeedback_raw_to_group(row) == {"prompt": "q", "responses": ["y", "z"], "rater_scores": [4.0, 2.0],
                                              "dropped_responses": 1}
    lonely = raw_row("r", [completion("x", 3.0, 1.0), completion("", 9.0, 1.0)])
    with pytest.raises(InvalidRowError, match=r"uf.jsonl, row 2: a group needs >= 2 responses, got 1"):
        expand_groups([row, lonely], "best_vs_worst", 0, None, None, "uf.jsonl", to_group=ultrafeedback_raw_to_group)
    no_instruction = {"completions": []}
    with pytest.raises(InvalidRowError, match=r"uf.jsonl, row 1: missing or empty field 'instruction'"):
        expand_groups([no_instruction], "best_vs_worst", 0, None, None, "uf.jsonl", to_group=ultrafeedback_raw_to_group)


def test_check_group_settings_names_key_and_value():
    assert check_group_settings(DatasetConfig(source="hf")) == []
    assert check_group_settings(DatasetConfig(source="hf", layout="foo", pair_rule="bar", score_key="s",
                                              group_positive="baz")) == [
        "dataset.layout='foo' is not one of ('pairs', 'ultrafeedback_raw', 'hh_rlhf')",
        "dataset.pair_rule='bar' is not one of ('best_vs_random', 'best_vs_worst', 'all_in_band')",
        "dataset.score_key='s' is not one of ('overall_score', 'fine-grained_score')",
        "dataset.group_positive='baz' is not one of ('best', 'threshold')"]
    band = check_group_settings(DatasetConfig(source="hf", pair_rule="all_in_band", pair_band_low=3.0, pair_band_high=1.0))
    assert band == ["dataset.pair_band_low=3.0 > dataset.pair_band_high=1.0: the band is empty"]
    assert check_group_settings(DatasetConfig(source="hf", pair_rule="all_in_band", pair_band_low=1.0,
                                              pair_band_high=1.0)) == []
    assert check_group_settings(DatasetConfig(source="hf", group_positive="threshold")) == [
        "dataset.group_positive=threshold needs dataset.group_positive_min"]
    assert "only apply to dataset.pair_rule=all_in_band" in check_group_settings(
        DatasetConfig(source="hf", pair_band_low=1.0))[0]
    assert "dataset.layout=ultrafeedback_raw" in check_group_settings(
        DatasetConfig(source="sandbox", layout="ultrafeedback_raw"))[0]


def test_unknown_layout_fails_loading_and_validation(tmp_path):
    with pytest.raises(ValueError, match=r"dataset.layout='foo' is not one of"):
        load_rows(raw_dataset(tmp_path, "dataset.layout=foo"))
    from prefexp.config.settings import ConfigError
    from prefexp.setup.validate import validate

    cfg = compose(["dataset=ultrafeedback_raw", "dataset.pair_rule=best_of_all"])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match=r"dataset.pair_rule='best_of_all' is not one of"):
        validate(cfg)
