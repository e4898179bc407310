"""Difficulty end to end on the sandbox (issue 4): MADPO with its reward-model stage, MaxNeg-MinPos
over the sandbox's four responses, token-cleaned SFT and MixDPO with a token-cleaned SFT branch.

Every run is a real ``python -m prefexp.train`` subprocess on a small sandbox model in a cache
folder of this module's own, so the reward model and token scores are built here, not reused.
First logged losses are checked against values recomputed in the test from the initial model.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prefexp.cachefs import read_checked_json
from tests.helpers import REPO, read_jsonl, run_train

# Synthetic responses: one row per prompt (400 pairs) and rows rebuilt here without the model;
# these tests are about margins and routing, not about where the responses come from.
SMALL = ["dataset.sandbox.num_prompts=400", "model.sandbox.sft_steps=80", "model.sandbox.num_prompts=400",
         "trainer.logging_steps=1", "logger=none", "dataset.sandbox.responses=synthetic"]


def train(run_dir: Path, cache: Path, *overrides: str, ok: bool = True) -> subprocess.CompletedProcess:
    return run_train(run_dir, f"paths.cache_dir={cache}", *SMALL, *overrides, ok=ok)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def first_batch(run_dir: Path, size: int):
    """(tokenizer, model, sandbox pairs of the first ``size`` plan rows) of a finished run."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefexp.data.records import to_pairs
    from prefexp.engine.tokenize import ensure_chat_template
    from prefexp.sandbox.data import build_sandbox_rows

    plan = read_jsonl(run_dir / "routing_plan.jsonl")[:size]
    model_dir = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["reference_model"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ensure_chat_template(tokenizer)
    pairs = {p.index: p for p in to_pairs(build_sandbox_rows(num_prompts=400, seed=0), "sandbox", "error", True)}
    return tokenizer, AutoModelForCausalLM.from_pretrained(model_dir).eval(), [pairs[r["index"]] for r in plan]


def test_madpo_trains_on_reward_model_margins(tmp_path, cache):
    from prefexp.losses.madpo import madpo_weights

    run_dir = tmp_path / "madpo"
    train(run_dir, cache, "loss=madpo", "trainer.max_steps=2", "trainer.per_device_batch_size=8")
    assert list((cache / "reward_models").glob("*/DONE")), "the reward model was not built"
    (scores_file,) = (cache / "reward_scores").glob("*.json")
    scores = {int(k): v[0] - v[1] for k, v in read_checked_json(scores_file).items()}
    plan = read_jsonl(run_dir / "routing_plan.jsonl")
    assert len(plan) == 400 and all(row["metric"] == "rating" for row in plan)
    for row in plan:  # the router reads ratings, MADPO's weights read the reward model
        assert row["loss_margin"] == pytest.approx(scores[row["index"]])
    first = read_jsonl(run_dir / "metrics.jsonl")[0]
    m = torch.tensor([row["loss_margin"] for row in plan[:8]])
    weights = madpo_weights(m, 2.0, 0.5, 1.0, math.log(0.999 / 0.001))
    assert first["madpo/mean_weight"] == pytest.approx(weights.mean().item(), rel=1e-5)
    assert first["loss"] == pytest.approx(math.log(2) * weights.mean().item(), rel=1e-5)  # h = 0 at step 1


def test_missing_reward_scores_stop_with_the_command(tmp_path, cache):
    proc = train(tmp_path / "run", cache, "loss=madpo", "trainer.max_steps=1", "reward_model.build_if_missing=false",
                 "reward_model.seed=7", ok=False)
    assert proc.returncode != 0
    assert "python -m prefexp.reward" in proc.stderr and "reward_model.seed=7" in proc.stderr


def test_smooth_maxneg_minpos_trains_on_four_responses(tmp_path, cache):
    from prefexp.data.groups import group_positive_labels
    from prefexp.engine.groups import GroupCollator, add_groups, dense_groups
    from prefexp.engine.logps import forward_logps
    from prefexp.engine.tokenize import tokenize_pairs

    run_dir = tmp_path / "smooth"
    train(run_dir, cache, "loss=smooth_maxneg_minpos", "trainer.max_steps=2", "trainer.per_device_batch_size=4")
    summary = json.loads((run_dir / "routing_summary.json").read_text())
    assert summary["groups"]["trained"] + summary["groups"]["left_out_without_contrast"] == 400
    first = read_jsonl(run_dir / "metrics.jsonl")[0]

    tokenizer, model, pairs = first_batch(run_dir, 4)
    examples, _ = tokenize_pairs(pairs, tokenizer, 96, 48)
    examples = add_groups(examples, pairs, tokenizer, 96, "best", None)
    batch = GroupCollator(tokenizer.pad_token_id)(examples)
    assert batch["group_mask"].shape == (4, 4) and bool(batch["group_mask"].all())
    with torch.no_grad():
        logps, lengths = forward_logps(model, batch)
    u = dense_groups(logps, batch) / dense_groups(lengths, batch)  # [4, 4] per-token mean log-probs
    t, expected = 10.0, []
    for b, pair in enumerate(pairs):  # SmoothMin over positives minus SmoothMax over negatives
        positive = torch.tensor(group_positive_labels(pair.extra["rater_scores"], "best", None))
        smooth_min = -torch.logsumexp(-t * u[b][positive], 0) / t
        smooth_max = torch.logsumexp(t * u[b][~positive], 0) / t
        expected.append(torch.nn.functional.softplus(-(smooth_min - smooth_max)))
    assert first["loss"] == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)


@pytest.mark.slow  # three training runs (~35 s); token cleaning stays in the default run via the MixDPO test below
def test_token_cleaned_sft(tmp_path, cache):
    clean = ["loss=sft", "token_cleaning=global", "token_cleaning.base_sft_steps=20", "trainer.max_steps=1",
             "trainer.per_device_batch_size=8"]
    train(tmp_path / "plain", cache, "loss=sft", "trainer.max_steps=1", "trainer.per_device_batch_size=8")
    plain = read_jsonl(tmp_path / "plain" / "metrics.jsonl")[0]
    train(tmp_path / "all", cache, *clean, "token_cleaning.keep_fraction=1.0")
    train(tmp_path / "sixty", cache, *clean)
    keep_all = read_jsonl(tmp_path / "all" / "metrics.jsonl")[0]
    sixty = read_jsonl(tmp_path / "sixty" / "metrics.jsonl")[0]
    assert keep_all["loss"] == pytest.approx(plain["loss"], rel=1e-5)  # every token kept = plain SFT
    assert abs(sixty["loss"] - plain["loss"]) > 1e-3
    summary = json.loads((tmp_path / "sixty" / "token_cleaning.json").read_text())
    assert summary["kept_tokens"] == math.floor(summary["tokens"] * 0.6 + 1e-9)  # global budget
    assert summary["level"] == "global" and "sandbox-model" in summary["base_model"]


def test_mixdpo_with_token_cleaned_sft_branch(tmp_path, cache):
    common = ["loss=mixdpo", "curriculum=hard_to_easy", "trainer.max_steps=2", "trainer.per_device_batch_size=4"]
    train(tmp_path / "plain", cache, *common)
    train(tmp_path / "sample", cache, *common, "token_cleaning=sample", "token_cleaning.base_sft_steps=20")
    plain = read_jsonl(tmp_path / "plain" / "metrics.jsonl")
    cleaned = read_jsonl(tmp_path / "sample" / "metrics.jsonl")
    assert [r["step"] for r in cleaned] == [1, 2]
    assert cleaned[0]["route/sft_fraction"] == 1.0  # hardest first: the first batch is all SFT
    assert abs(cleaned[0]["loss"] - plain[0]["loss"]) > 1e-3  # the SFT branch saw only kept tokens
    summary = json.loads((tmp_path / "sample" / "token_cleaning.json").read_text())
    assert summary["level"] == "sample" and 0.5 < summary["kept_tokens"] / summary["tokens"] < 0.6


@pytest.mark.parametrize("metric", ["reward_model", "reference_logp"])
def test_model_metrics_plan_without_training(tmp_path, cache, metric):
    run_dir = tmp_path / metric
    train(run_dir, cache, "loss=mixdpo", f"router.metric={metric}", "router=threshold", "tau=0.0", "dry_run=true")
    assert not (run_dir / "checkpoint").exists()
    plan = read_jsonl(run_dir / "routing_plan.jsonl")
    margins = [row["margin"] for row in plan]
    assert len(plan) == 400 and all(row["metric"] == metric for row in plan)
    assert margins == sorted(margins, reverse=True)  # easy_to_hard on this metric
    assert all((row["route"] == "sft") == (row["margin"] < 0.0) for row in plan)
    assert 0 < sum(row["route"] == "sft" for row in plan) < 400  # both signs occur
    if metric == "reward_model":
        (scores_file,) = (cache / "reward_scores").glob("*.json")
        scores = {int(k): v[0] - v[1] for k, v in read_checked_json(scores_file).items()}
        assert all(row["margin"] == pytest.approx(scores[row["index"]]) for row in plan)
