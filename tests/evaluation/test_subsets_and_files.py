"""eval.limit's proportional sample, and the readers of files a researcher brings."""
from __future__ import annotations

import gzip
import json

import pytest

from prefexp.evaluation.config import EvalConfigError
from prefexp.evaluation.given_files import read_given
from prefexp.evaluation.subsets import describe, quotas, stratified_sample


def test_quotas_largest_remainder():
    # exact shares 2.5 / 1.5 / 1.0 -> floors 2, 1, 1; the one left goes to the largest remainder,
    # a tie between a and b broken by name
    assert quotas({"a": 5, "b": 3, "c": 2}, 5) == {"a": 3, "b": 1, "c": 1}
    assert quotas({"writing": 10, "math": 10}, 3) == {"math": 2, "writing": 1}


def test_sample_keeps_order_is_seeded_and_flags_itself():
    items = [{"i": i, "cat": "x" if i < 6 else "y"} for i in range(9)]  # 6 x, 3 y
    cat = lambda r: r["cat"]  # noqa: E731
    picked = stratified_sample(items, cat, 3, seed=0)
    assert [r["cat"] for r in picked] == ["x", "x", "y"]
    assert [r["i"] for r in picked] == sorted(r["i"] for r in picked)
    assert stratified_sample(items, cat, 3, seed=0) == picked
    assert {tuple(r["i"] for r in stratified_sample(items, cat, 3, seed=s)) for s in range(6)} != {
        tuple(r["i"] for r in picked)}  # another seed, another sample (6 seeds: not all equal)
    assert stratified_sample(items, cat, 9, seed=0) == items and stratified_sample(items, cat, None, 0) == items
    sub = describe(picked, cat, 9, 0, "items")
    assert sub["n"] == 3 and sub["of"] == 9 and sub["per_category"] == {"x": 2, "y": 1}
    assert "not comparable" in sub["note"] and describe(items, cat, 9, 0, "items") is None


def test_given_file_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"question_id": 81, "choices": []}\n{not json\n')
    with pytest.raises(EvalConfigError, match=r"answers\.jsonl:2: not valid JSON"):
        read_given(bad, "mt_answers", None)
    lacking = tmp_path / "outputs.json"
    lacking.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}]))
    with pytest.raises(EvalConfigError, match=r"outputs\.json:2: row lacks \['output'\]"):
        read_given(lacking, "alpaca_outputs", None)


def test_given_file_gzip_and_model_choice(tmp_path):
    path = tmp_path / "j.jsonl.gz"
    rows = [{"question_id": 81, "turn": 1, "score": 5, "model": m} for m in ("a", "b")]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.raises(EvalConfigError, match=r"holds 2 models \['a', 'b'\]"):
        read_given(path, "mt_judgments", None)
    picked, name = read_given(path, "mt_judgments", "b")
    assert name == "b" and picked == [rows[1]]
    with pytest.raises(EvalConfigError, match="eval.model_name='c'"):
        read_given(path, "mt_judgments", "c")
