"""AlpacaEval end to end through the alpaca_eval package, judged by the fake server over HTTP."""
from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest

from prefexp.evaluation.judge_client import JudgeError
from prefexp.evaluation.runner import evaluate
from tests.evaluation.conftest import assert_secret_nowhere, settings, shared_path

pytest.importorskip("alpaca_eval")


def _overrides(run, judge_url, key_env, data_dir, limit=4):
    return [f"checkpoint={run}", "eval=alpaca_eval", f"eval.limit={limit}", f"eval.data_dir={data_dir}",
            f"eval.judge.base_url={judge_url}", "eval.judge.model=fake-judge",
            f"eval.judge.api_key_env={key_env}", "eval.judge.max_retries=3",
            "eval.generation.max_new_tokens=4", "eval.generation.device=cpu", "wandb=false"]


def test_end_to_end_limit_no_lc(tiny_run, fake_judge, judge_key, tmp_path, monkeypatch):
    """4 instructions; the fake judge prefers the longer output, and the tiny model's 4-token
    noise is shorter than every GPT-4 reference answer: win rate 10% (preference 1 + P(M) = 1.1
    for each, win_rate = 100 * mean(preference - 1)), n_wins 0 of 4."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))  # not the user's
    data = shared_path("alpaca_eval")
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, data)))
    m = res["metrics"]
    assert m["n_total"] == 4 and m["n_wins"] == 0 and m["n_wins_base"] == 4
    assert m["win_rate"] == pytest.approx(10.0)
    assert m["standard_error"] == pytest.approx(0.0, abs=1e-9)
    assert m["length_controlled_winrate"] is None
    assert "df_gamed.csv" in m["length_controlled_note"] and "not computed" in m["length_controlled_note"]
    posts = fake_judge.posts("alpaca")
    assert len(posts) == 4
    assert all(p["body"]["model"] == "fake-judge" and p["body"]["top_logprobs"] == 5 for p in posts)
    assert all(p["auth"] == "Bearer sk-test-never-on-disk-4242" for p in posts)

    out = tiny_run / "eval" / "alpaca_eval"
    outputs = json.loads((out / "model_outputs.json").read_text())
    assert [set(o) for o in outputs] == [{"instruction", "output", "generator", "dataset"}] * 4
    assert {o["generator"] for o in outputs} == {res["model_name"]}
    assert (out / "annotations_cache.json").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["judge"]["annotator"] == "weighted_alpaca_eval_gpt4_turbo"
    assert results["data"]["source"].startswith("local:") and results["data"]["version"].startswith("sha256:")
    assert_secret_nowhere(tiny_run)
    client_cfg = (out / "annotator" / "client_config.yaml").read_text()
    assert "api_key_env: PREFEXP_TEST_JUDGE_KEY" in client_cfg

    # Re-run: outputs reused, every annotation comes from the run's cache (no request).
    evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, data)))
    assert len(fake_judge.posts("alpaca")) == 4
    # A larger limit pays only for the new instructions.
    res6 = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, data, limit=6)))
    assert len(fake_judge.posts("alpaca")) == 6 and res6["metrics"]["n_total"] == 6


def test_rate_limits_server_errors_and_timeouts_are_retried(tiny_run, fake_judge, judge_key):
    fake_judge.fail_next(1, 429)  # three faults in a row: max_retries=3 absorbs them
    fake_judge.fail_next(1, 503)
    fake_judge.hang_next(1, 2.0)
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"), limit=2)
                            + ["eval.judge.timeout_s=0.5", "eval.judge.concurrency=1"]))
    assert res["metrics"]["n_total"] == 2
    assert len(fake_judge.posts("fault")) == 2 and len(fake_judge.posts("hang")) == 1


def test_failure_keeps_annotations_and_rerun_resumes(tiny_run, fake_judge, judge_key):
    """chunksize 2: the first chunk is cached, the judge then fails past max_retries -> JudgeError
    naming the endpoint and the cache; the re-run asks only for the 2 missing annotations."""
    args = _overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"), limit=4) + [
        "eval.chunksize=2", "eval.judge.concurrency=1", "eval.judge.max_retries=1"]
    original = fake_judge.answer_chat
    calls = {"n": 0}

    def answer_then_break(body):
        calls["n"] += 1
        if calls["n"] == 2:
            fake_judge.fail_next(100, 500)
        return original(body)

    fake_judge.answer_chat = answer_then_break
    with pytest.raises(JudgeError, match=r"127\.0\.0\.1.*\n.*annotations_cache\.json; a re-run resumes"):
        evaluate(settings(args))
    cache = json.loads((tiny_run / "eval" / "alpaca_eval" / "annotations_cache.json").read_text())
    assert len(cache) == 2
    fake_judge.answer_chat = original
    fake_judge.clear_faults()
    fake_judge.requests.clear()
    res = evaluate(settings(args))
    assert len(fake_judge.posts("alpaca")) == 2 and res["metrics"]["n_total"] == 4


def _stand_in_df_gamed(path: Path, n: int = 805) -> None:
    """A synthetic df_gamed.csv (columns of the real one) so the LC code path can run offline.
    Its numbers mean nothing: this only tests the plumbing, never the LC value."""
    rng = random.Random(0)
    lines = ["model,index,instruction_difficulty,preference,std_delta_len,not_gamed_baseline"]
    for model, sign in (("gpt4_1106_preview_verbose", -1), ("gpt4_1106_preview_concise", 1)):
        for i in range(n):
            lines.append(f"{model},{i},{rng.uniform(-1, 1):.4f},{rng.uniform(0, 1):.4f},"
                         f"{sign * rng.uniform(0, 2):.4f},False")
    path.write_text("\n".join(lines) + "\n")


def test_lc_computed_when_df_gamed_given(tiny_run, fake_judge, judge_key, tmp_path):
    data = tmp_path / "alpaca_data"
    shutil.copytree(shared_path("alpaca_eval", "reference_outputs"), data / "reference_outputs")
    _stand_in_df_gamed(data / "df_gamed.csv")
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, data, limit=12)))
    m = res["metrics"]
    assert isinstance(m["length_controlled_winrate"], float)
    assert "df_gamed.csv from local:" in m["length_controlled_note"]
    assert "not comparable" in m["length_controlled_note"]


def test_shared_annotations_reproduce_leaderboard_win_rate():
    """alpaca_eval's own metric on stored real AE2 annotations gives the leaderboard win rate
    (gpt-3.5-turbo-1106: 9.177965, README of ../shared/data/alpaca_eval)."""
    from alpaca_eval.metrics import get_winrate

    path = shared_path("alpaca_eval", "annotations_weighted_alpaca_eval_gpt4_turbo", "gpt-3.5-turbo-1106.jsonl.gz")
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    assert round(get_winrate(rows)["win_rate"], 6) == 9.177965
