"""Responses sampled from the reference: deterministic, cached beside the model, all K kept."""
from __future__ import annotations

import pytest

from prefexp.sandbox import model as sandbox_model
from prefexp.sandbox import samples as sandbox_samples
from prefexp.sandbox.data import build_sandbox_rows, make_prompts
from prefexp.sandbox.task import gold_score

SMALL = dict(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_length=64, sft_steps=4,
             sft_batch_size=8, num_prompts=24, eval_prompts=4)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return sandbox_model.ensure_sandbox_model(tmp_path_factory.mktemp("sandbox-cache"), **SMALL)


def test_samples_are_cached_and_deterministic(model_dir, monkeypatch):
    prompts = make_prompts(5, seed=3)
    first = sandbox_samples.ensure_reference_samples(model_dir, prompts, k=3, temperature=1.0, seed=3)
    assert len(first) == 5 and all(len(s) == 3 for s in first)
    cached = list((model_dir / "samples").glob("*.json"))
    assert len(cached) == 1

    def no_sampling(*a, **k):
        raise AssertionError("cached samples were re-drawn")

    monkeypatch.setattr(sandbox_samples, "sample_responses", no_sampling)
    assert sandbox_samples.ensure_reference_samples(model_dir, prompts, k=3, temperature=1.0, seed=3) == first
    monkeypatch.undo()
    # the same draw again from scratch (per-batch seeding), and another seed draws otherwise
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m, tok = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    assert sandbox_samples.sample_responses(m, tok, prompts, 3, 1.0, seed=3) == first
    assert sandbox_samples.sample_responses(m, tok, prompts, 3, 1.0, seed=4) != first


def test_rows_from_samples_keep_all_k_and_rate_them(model_dir):
    rows = build_sandbox_rows(12, seed=0, responses="reference_samples", model_dir=model_dir,
                              rater_noise=0.0, length_bias=0.0)
    drawn = sandbox_samples.ensure_reference_samples(model_dir, make_prompts(12, 0), 4, 1.0, 0)
    by_prompt = dict(zip(make_prompts(12, 0), drawn))
    # a prompt gives no row only when its 4 samples hold fewer than two non-empty texts
    assert len(rows) == sum(len({t for t in s if t.strip()}) > 1 for s in drawn)
    for r in rows:
        assert r["responses"] == by_prompt[r["prompt"]]  # all K, in sampling order, duplicates kept
        assert r["gold_scores"] == [gold_score(r["prompt"], t) for t in r["responses"]]
        # noise-free, unbiased rater: the rating is the gold score rounded to halves
        assert all(abs(s - g) <= 0.25 for s, g in zip(r["rater_scores"], r["gold_scores"]))
        assert r["chosen"] != r["rejected"] and r["chosen"].strip() and r["rejected"].strip()
        assert r["score_chosen"] == max(s for s, t in zip(r["rater_scores"], r["responses"]) if t.strip())


def test_sampled_rows_need_a_model():
    with pytest.raises(ValueError, match="model_dir"):
        build_sandbox_rows(3, seed=0, responses="reference_samples")
    with pytest.raises(ValueError, match="responses"):
        build_sandbox_rows(3, seed=0, responses="handwritten")
