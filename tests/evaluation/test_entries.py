"""Scoring what a researcher already has: the four entries of ``python -m prefexp.evaluate``
reproduce the published numbers from the real files in ../shared/data.

* ``annotations=``: the stored AE2 annotations of 6 models give the leaderboard's win rate and
  standard error; the stored GPT-4 judgments of 5 models give FastChat's averages;
* ``outputs=``: the stored answers, judged over HTTP by a fake judge that replays the real judge's
  answers (AE2 top logprobs per instruction, GPT-4 judgment text per prompt), give the same;
* ``hf_model=``: any HF folder, no manifest, with the chat template given on the command line.

Bounds: the win rate is 100 x a mean of 805 doubles; summing in another order moves it by at
most ~805 x 2^-53 relative (1e-13); the leaderboard CSV prints 16 digits. MT-Bench averages
are compared at the 6 decimals the expected-scores CSV carries.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefexp.evaluation.runner import evaluate
from tests.evaluation.conftest import CHAT_TEMPLATE, KEY_ENV, SECRET, TINY_GPT2, settings, shared_path

REPO = Path(__file__).resolve().parents[2]
AE_MODELS = ["gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106_concise", "gpt-3.5-turbo-1106_verbose",
             "OpenHermes-2.5-Mistral-7B", "vicuna-7b-v1.3", "alpaca-7b"]
# model -> judgment file (../shared/data/mt_bench/model_judgment/expected_scores_show_result_rule.csv)
MT_MODELS = {"vicuna-7b-v1.3": "medusa_gpt-4_single.jsonl.gz", "vicuna-7b-v1.3-greedy": "medusa_gpt-4_single.jsonl.gz",
             "medusa-vicuna-7b-v1.3-1-temperature-0.0-posterior_threshold-0.09-posterior_alpha-0.3":
                 "medusa_gpt-4_single.jsonl.gz",
             "mistral-7b-instruct-v0.2": "eva_mistral-7b-instruct-v0.2_gpt-4_single.jsonl.gz",
             "llama-3.1-8b-instruct": "eva_llama-3.1-8b-instruct_gpt-4_single.jsonl.gz"}


def leaderboard() -> dict[str, dict]:
    path = shared_path("alpaca_eval", "leaderboards", "AlpacaEval2_weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
    with path.open() as f:
        return {row[""]: row for row in csv.DictReader(f)}


def expected_mt() -> dict[str, dict]:
    path = shared_path("mt_bench", "model_judgment", "expected_scores_show_result_rule.csv")
    with path.open() as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def _gz_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("model", AE_MODELS)
def test_alpaca_annotations_reproduce_leaderboard(model, tmp_path):
    pytest.importorskip("alpaca_eval")
    path = shared_path("alpaca_eval", "annotations_weighted_alpaca_eval_gpt4_turbo", f"{model}.jsonl.gz")
    res = evaluate(settings([f"annotations={path}", "eval=alpaca_eval", f"eval.data_dir={shared_path('alpaca_eval')}",
                             f"output_dir={tmp_path}", "wandb=false"]))
    want, m = leaderboard()[model], res["metrics"]
    assert m["win_rate"] == pytest.approx(float(want["win_rate"]), rel=1e-13)
    assert m["standard_error"] == pytest.approx(float(want["standard_error"]), rel=1e-13)
    assert (m["n_wins"], m["n_wins_base"], m["n_draws"], m["n_total"]) == tuple(
        int(want[k]) for k in ("n_wins", "n_wins_base", "n_draws", "n_total"))
    assert m["avg_length"] == int(want["avg_length"])
    assert res["model_name"] == model and res["subset"] is None and m["n_failed"] == 0


@pytest.mark.parametrize("model", sorted(MT_MODELS))
def test_mt_bench_judgments_reproduce_expected(model, tmp_path):
    path = shared_path("mt_bench", "model_judgment", MT_MODELS[model])
    res = evaluate(settings([f"annotations={path}", "eval=mt_bench", f"eval.data_dir={shared_path('mt_bench')}",
                             f"eval.model_name={model}", f"output_dir={tmp_path}", "wandb=false"]))
    want, m = expected_mt()[model], res["metrics"]
    assert (round(m["score"], 6), round(m["turn_1"], 6), round(m["turn_2"], 6)) == (
        float(want["average"]), float(want["turn1_mean"]), float(want["turn2_mean"]))
    assert m["n_unparseable"] == int(want["n_score_minus1_dropped"]) and m["n_judgments"] == 160


def test_judgments_file_with_several_models_needs_a_name(tmp_path):
    path = shared_path("mt_bench", "model_judgment", "medusa_gpt-4_single.jsonl.gz")
    from prefexp.evaluation.config import EvalConfigError

    with pytest.raises(EvalConfigError, match="holds 3 models .*eval.model_name=<name>"):
        evaluate(settings([f"annotations={path}", "eval=mt_bench", f"eval.data_dir={shared_path('mt_bench')}",
                           f"output_dir={tmp_path}", "wandb=false"]))


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, KEY_ENV: SECRET, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "prefexp.evaluate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_public_command_prints_leaderboard_numbers(tmp_path):
    """The issue's check, as a user types it: 9.18 for gpt-3.5-turbo-1106, and an MT-Bench
    judgments file's averages (llama-3.1-8b-instruct: 8.301887 / 8.9 / 7.696203, one -1 dropped)."""
    pytest.importorskip("alpaca_eval")
    ae = shared_path("alpaca_eval", "annotations_weighted_alpaca_eval_gpt4_turbo", "gpt-3.5-turbo-1106.jsonl.gz")
    proc = _cli([f"annotations={ae}", "eval=alpaca_eval", f"eval.data_dir={shared_path('alpaca_eval')}"], tmp_path / "a")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "alpaca_eval gpt-3.5-turbo-1106: win_rate=9.18 length_controlled_winrate=n/a standard_error=0.89 (n=805," \
        in proc.stdout
    assert (tmp_path / "a" / "outputs" / "eval" / "alpaca_eval" / "gpt-3.5-turbo-1106" / "results.json").is_file()
    assert "pkg_resources" not in proc.stderr + proc.stdout  # alpaca_eval's import, not the user's business
    mt = shared_path("mt_bench", "model_judgment", "eva_llama-3.1-8b-instruct_gpt-4_single.jsonl.gz")
    proc = _cli([f"annotations={mt}", "eval=mt_bench", f"eval.data_dir={shared_path('mt_bench')}"], tmp_path / "m")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("mt_bench llama-3.1-8b-instruct: score=8.301887 turn_1=8.900000 turn_2=7.696203 n_unparseable=1 "
            "(n=80, judge gpt-4)") in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MT_MODELS))
def test_public_command_prints_every_mt_bench_average(model, tmp_path):
    path = shared_path("mt_bench", "model_judgment", MT_MODELS[model])
    proc = _cli([f"annotations={path}", "eval=mt_bench", f"eval.data_dir={shared_path('mt_bench')}",
                 f"eval.model_name={model}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = expected_mt()[model]
    assert (f"score={float(want['average']):.6f} turn_1={float(want['turn1_mean']):.6f} "
            f"turn_2={float(want['turn2_mean']):.6f}") in proc.stdout


@pytest.mark.slow  # 801 judge requests over HTTP: ~30 s on the shared 2 cores
def test_alpaca_outputs_judged_by_replayed_judge_reproduce_leaderboard(tmp_path, fake_judge, judge_key):
    """outputs=: gpt-3.5-turbo-1106's 805 stored outputs, judged over HTTP; the fake judge answers
    each instruction with the real judge's stored top-5 logprobs. alpaca_eval's prompts, order
    randomisation and parser then give the leaderboard's win rate."""
    pytest.importorskip("alpaca_eval")
    model = "gpt-3.5-turbo-1106"
    annotations = _gz_rows(shared_path("alpaca_eval", "annotations_weighted_alpaca_eval_gpt4_turbo", f"{model}.jsonl.gz"))
    fake_judge.replay_logprobs = {a["instruction"]: a["judge_top_logprobs"] for a in annotations}
    outputs = shared_path("alpaca_eval", "model_outputs", f"{model}.jsonl.gz")
    res = evaluate(settings([f"outputs={outputs}", "eval=alpaca_eval", f"eval.data_dir={shared_path('alpaca_eval')}",
                             f"eval.judge.base_url={fake_judge.url}", f"eval.judge.api_key_env={judge_key}",
                             "eval.judge.concurrency=16", f"output_dir={tmp_path}", "wandb=false"]))
    want, m = leaderboard()[model], res["metrics"]
    # 4 identical outputs are draws without a request (alpaca_eval's rule)
    assert len(fake_judge.posts("alpaca")) == 805 - int(want["n_draws"]) and m["n_failed"] == 0
    # the stored preferences were rounded to 10 decimals; the replayed logprobs give them unrounded
    assert m["win_rate"] == pytest.approx(float(want["win_rate"]), abs=1e-8)
    assert m["standard_error"] == pytest.approx(float(want["standard_error"]), abs=1e-8)
    assert res["model_name"] == model and res["generation"] is None


def test_mt_bench_answers_judged_by_replayed_judge_reproduce_expected(tmp_path, fake_judge, judge_key):
    """outputs=: mistral-7b-instruct-v0.2's stored answers; the fake judge replays GPT-4's text
    for each exact prompt: 8.0375 / 7.35 / 7.69375."""
    model = "mistral-7b-instruct-v0.2"
    rows = _gz_rows(shared_path("mt_bench", "model_judgment", f"eva_{model}_gpt-4_single.jsonl.gz"))
    fake_judge.replay = {r["user_prompt"]: r["judgment"] for r in rows}
    res = evaluate(settings([f"outputs={shared_path('mt_bench', 'model_answer', f'{model}.jsonl')}", "eval=mt_bench",
                             f"eval.data_dir={shared_path('mt_bench')}", f"eval.judge.base_url={fake_judge.url}",
                             "eval.judge.model=gpt-4", f"eval.judge.api_key_env={judge_key}",
                             "eval.judge.concurrency=16", f"output_dir={tmp_path}", "wandb=false"]))
    m = res["metrics"]
    assert (round(m["score"], 6), round(m["turn_1"], 6), round(m["turn_2"], 6)) == (7.69375, 8.0375, 7.35)
    assert len(fake_judge.posts("judge")) == 160 and res["model_name"] == model


def test_any_hf_model_folder(tmp_path, fake_judge, judge_key, monkeypatch):
    """hf_model=: the random tiny GPT-2 (no manifest, no chat template of its own) with the
    template from a file; results default to outputs/eval/<benchmark>/<model> in the cwd."""
    if not TINY_GPT2.is_dir():
        pytest.skip(f"{TINY_GPT2} not available")
    template = tmp_path / "chat.jinja"
    template.write_text(CHAT_TEMPLATE)
    monkeypatch.chdir(tmp_path)
    res = evaluate(settings([f"hf_model={TINY_GPT2}", f"chat_template={template}", "eval=mt_bench", "eval.limit=1",
                             f"eval.data_dir={shared_path('mt_bench')}", f"eval.judge.base_url={fake_judge.url}",
                             f"eval.judge.api_key_env={judge_key}", "eval.generation.max_new_tokens=3",
                             "eval.generation.device=cpu", "wandb=false"]))
    saved = json.loads((tmp_path / "outputs" / "eval" / "mt_bench" / "tiny-gpt2" / "results.json").read_text())
    assert saved["metrics"]["score"] == 5.0 and saved["model_name"] == "tiny-gpt2"
    import hashlib

    assert saved["checkpoint"] == {"kind": "model", "path": str(TINY_GPT2.resolve()), "chat_template_source":
                                   "chat_template=", "chat_template_sha256":
                                   hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()[:16]}
    assert saved["generation"]["max_new_tokens"] == 3 and "wandb" not in res  # wandb=false
    # Without a template (tiny-gpt2's tokenizer has none): one clear error naming the key.
    from prefexp.evaluation.config import EvalConfigError

    with pytest.raises(EvalConfigError, match="no chat template .*chat_template=<template or file>"):
        evaluate(settings([f"hf_model={TINY_GPT2}", "eval=mt_bench", "eval.limit=1", "output_dir=other",
                           f"eval.data_dir={shared_path('mt_bench')}", f"eval.judge.base_url={fake_judge.url}",
                           f"eval.judge.api_key_env={judge_key}", "eval.generation.device=cpu", "wandb=false"]))
