"""Each pipeline stage's contract, input -> output, on small data and without training.

The pairs are a JSONL file written here with known scores; the model is the random tiny GPT-2 in
../shared/data/models (only for the stages that need one).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from prefexp.setup.validate import validate
from prefexp.difficulty.plan import PlanEntry
from prefexp.pipeline.checkpoint import config_hash
from prefexp.pipeline.difficulty import Margins, score_difficulty
from prefexp.pipeline.examples import training_examples
from prefexp.pipeline.load import load_data
from prefexp.pipeline.model_source import ModelSource
from prefexp.pipeline.planning import plan_training
from prefexp.pipeline.reference import ReferenceLogps, reference_pass
from prefexp.pipeline.token_cleaning import clean_tokens
from prefexp.pipeline.tokens import TokenisedPairs, tokenise
from tests.conftest import SHARED, compose
from tests.helpers import read_jsonl

TINY_GPT2 = SHARED / "data" / "models" / "tiny-gpt2"
# (score_chosen, score_rejected): margins 3.0, 0.25, 1.0, 0.5
SCORES = [(8.0, 5.0), (6.0, 5.75), (7.0, 6.0), (5.5, 5.0)]


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"question {i}?", "chosen": f"good answer {i}", "rejected": f"bad {i}",
             "score_chosen": c, "score_rejected": r} for i, (c, r) in enumerate(SCORES)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def settings_for(pairs_file: Path, tmp_path: Path, *overrides: str):
    cfg = compose(["dataset=jsonl", f"dataset.path={pairs_file}", f"paths.run_dir={tmp_path / 'run'}",
                   f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", *overrides])
    return validate(cfg)


def test_load_data_gives_pairs_in_source_order(pairs_file, tmp_path):
    data = load_data(settings_for(pairs_file, tmp_path, "loss=dpo"))
    assert [p.index for p in data.pairs] == [0, 1, 2, 3]
    assert [(p.score_chosen, p.score_rejected) for p in data.pairs] == SCORES
    assert data.use_groups is False
    assert data.summary == {"data": {"rows_read": 4, "skipped_invalid": {}, "duplicates_kept": 0}}


def test_rating_margins_need_no_model(pairs_file, tmp_path):
    settings = settings_for(pairs_file, tmp_path, "loss=mixdpo")
    model = ModelSource(settings.config)
    margins = score_difficulty(settings, load_data(settings), model)
    assert margins.by_metric == {"rating": {0: 3.0, 1: 0.25, 2: 1.0, 3: 0.5}}
    assert "path" not in vars(model) and "tokenizer" not in vars(model)  # nothing resolved or loaded


def test_plan_routes_orders_and_writes_once(pairs_file, tmp_path):
    settings = settings_for(pairs_file, tmp_path, "loss=mixdpo", "tau=0.75")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = load_data(settings)
    plan = plan_training(settings, data, Margins({"rating": {0: 3.0, 1: 0.25, 2: 1.0, 3: 0.5}}), run_dir)
    assert [e.index for e in plan] == [0, 2, 3, 1]  # easy to hard: descending margin
    assert [e.route for e in plan] == ["dpo", "dpo", "sft", "sft"]  # margin < tau=0.75 -> SFT
    assert [e.difficult for e in plan] == [False, False, True, True]
    assert [row["index"] for row in read_jsonl(run_dir / "routing_plan.jsonl")] == [0, 2, 3, 1]
    summary = json.loads((run_dir / "routing_summary.json").read_text())
    assert summary["pairs"] == 4 and summary["routes"] == {"dpo": 2, "sft": 2}


def test_plan_records_the_loss_margin_of_another_metric(pairs_file, tmp_path):
    """MADPO reads reward-model margins while the router and curriculum read ratings."""
    settings = settings_for(pairs_file, tmp_path, "loss=madpo", "router=none")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    reward = {0: -1.0, 1: 2.0, 2: 0.5, 3: 1.5}
    plan = plan_training(settings, load_data(settings),
                         Margins({"rating": {0: 3.0, 1: 0.25, 2: 1.0, 3: 0.5}, "reward_model": reward}), run_dir)
    assert {e.index: e.loss_margin for e in plan} == reward
    assert {e.index: e.margin for e in plan} == {0: 3.0, 1: 0.25, 2: 1.0, 3: 0.5}


def test_training_examples_follow_the_plan():
    tokens = TokenisedPairs([{"index": i, "prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]} for i in range(3)],
                            pad_token_id=0, has_groups=False)
    reference = ReferenceLogps({0: (-1.0, -2.0), 1: (-3.0, -4.0), 2: (-5.0, -6.0)})
    plan = [PlanEntry(2, 0.5, "sft", True, 1.0), PlanEntry(0, None, "dpo", False, 2.0, loss_margin=1.5)]
    out = training_examples(tokens, reference, {0: [1], 2: [0]}, plan)
    assert [e["index"] for e in out] == [2, 0]  # discarded pair 1 is absent
    assert out[0]["margins"] == 0.5 and out[0]["difficult"] is True and out[0]["clean_keep"] == [0]
    assert out[1]["margins"] == 1.5 and out[1]["pair_weights"] == 2.0  # the loss's own margin wins
    assert (out[1]["reference_chosen_logps"], out[1]["reference_rejected_logps"]) == (-1.0, -2.0)
    plain = training_examples(tokens, None, None, [PlanEntry(1, None, "dpo", False)])
    assert math.isnan(plain[0]["margins"]) and "reference_chosen_logps" not in plain[0] and "clean_keep" not in plain[0]


@pytest.mark.skipif(not TINY_GPT2.is_dir(), reason="../shared/data is not beside the repo")
def test_tokenise_then_reference_pass_on_a_tiny_model(pairs_file, tmp_path):
    from prefexp.engine.batching import PairCollator
    from prefexp.engine.logps import forward_logps

    settings = settings_for(pairs_file, tmp_path, "loss=dpo", "model=hf", f"model.name_or_path={TINY_GPT2}")
    model = ModelSource(settings.config)
    data = load_data(settings)
    tokens = tokenise(settings.config, data, model)
    eos = model.tokenizer.eos_token_id
    assert [e["index"] for e in tokens.examples] == [0, 1, 2, 3]
    assert all(e["chosen_ids"][-1] == eos and e["rejected_ids"][-1] == eos for e in tokens.examples)
    reference = reference_pass(settings, tokens, model)
    policy = model.load().eval()
    with torch.no_grad():
        logps, _ = forward_logps(policy, PairCollator(tokens.pad_token_id)(tokens.examples))  # [2B]: chosen, rejected
    n = len(tokens.examples)
    for k, e in enumerate(tokens.examples):  # the pass equals a direct forward of the same model
        assert reference.pairs[e["index"]] == pytest.approx((logps[k].item(), logps[n + k].item()), rel=1e-5)
    assert reference.groups is None
    assert clean_tokens(settings.config, tokens, model, tmp_path) is None  # token cleaning off


@pytest.mark.skipif(not TINY_GPT2.is_dir(), reason="../shared/data is not beside the repo")
def test_tokenise_writes_the_truncation_counts_of_the_training_pairs(tmp_path):
    """Both rendered prompts (chat template included) are longer than 4 tokens and are cut to 4,
    leaving room for 4 response tokens: "the answer is simply yes" / "... no" (5 words + EOS
    each) are cut to the same 4 tokens; the short pair's responses fit."""
    path = tmp_path / "pairs.jsonl"
    long_prompt = "please read this long question and answer it with one word, yes or no, right now?"
    rows = [{"prompt": long_prompt, "chosen": "the answer is simply yes", "rejected": "the answer is simply no"},
            {"prompt": "q?", "chosen": "a", "rejected": "b"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = settings_for(path, tmp_path, "loss=dpo", "router=none", "curriculum=none", "model=hf",
                            f"model.name_or_path={TINY_GPT2}", "dataset.max_length=8", "dataset.max_prompt_length=4")
    model, data = ModelSource(settings.config), load_data(settings)
    tokenise(settings.config, data, model)  # a scoring pass: no file
    assert not (tmp_path / "tokenization_summary.json").exists()
    tokens = tokenise(settings.config, data, model, tmp_path)
    first = tokens.examples[0]
    assert len(first["prompt_ids"]) == 4 and np.array_equal(first["chosen_ids"], first["rejected_ids"])
    summary = json.loads((tmp_path / "tokenization_summary.json").read_text())
    assert summary == {"pairs": 2, "prompt_truncated": 2, "response_truncated": 1, "identical_after_truncation": 1,
                       "max_length": 8, "max_prompt_length": 4}


def test_reference_free_loss_skips_the_reference_pass(pairs_file, tmp_path):
    settings = settings_for(pairs_file, tmp_path, "loss=simpo", "curriculum=none", "router=none")
    model = ModelSource(settings.config)
    tokens = TokenisedPairs([], pad_token_id=0, has_groups=False)
    assert reference_pass(settings, tokens, model) is None and "path" not in vars(model)


def test_config_hash_ignores_paths_and_logger():
    base = {"loss": {"beta": 0.1}, "paths": {"run_dir": "/a"}, "logger": {"name": "x"}}
    moved = {"loss": {"beta": 0.1}, "paths": {"run_dir": "/b"}, "logger": {"name": "y"}}
    assert config_hash(base) == config_hash(moved) != config_hash({**base, "loss": {"beta": 0.2}})
