"""AlpacaEval end to end through the alpaca_eval package, judged by the fake server over HTTP."""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from prefexp.evaluation.judging import IncompleteJudging, JudgeSetupError
from prefexp.evaluation.runner import evaluate
from prefexp.evaluation.store import read_jsonl
from tests.evaluation.conftest import assert_secret_nowhere, settings, shared_path

pytest.importorskip("alpaca_eval")


def _overrides(run, judge_url, key_env, data_dir, limit=4):
    return [f"checkpoint={run}", "eval=alpaca_eval", f"eval.limit={limit}", f"eval.data_dir={data_dir}",
            f"eval.judge.base_url={judge_url}", "eval.judge.model=fake-judge",
            f"eval.judge.api_key_env={key_env}", "eval.judge.max_retries=3",
            "eval.generation.max_new_tokens=4", "eval.generation.device=cpu", "wandb=false"]


def _sample(limit):
    from prefexp.evaluation.subsets import stratified_sample
    from prefexp.evaluation.store import read_jsonl

    rows = read_jsonl(shared_path("alpaca_eval", "reference_outputs", "gpt4_1106_preview.jsonl"))
    return [r["instruction"] for r in stratified_sample(rows, lambda r: r["dataset"], limit, 0)]


def test_end_to_end_limit_no_lc(tiny_run, fake_judge, judge_key, tmp_path, monkeypatch):
    """4 instructions (one each from the 4 largest datasets, seeded); the fake judge prefers the
    longer output, and the tiny model's 4-token noise is shorter than every GPT-4 reference
    answer: win rate 10% (preference 1 + P(M) = 1.1 for each, win_rate = 100 * mean(preference
    - 1)), n_wins 0 of 4."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))  # not the user's
    data = shared_path("alpaca_eval")
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, data)))
    m = res["metrics"]
    assert m["n_total"] == 4 and m["n_wins"] == 0 and m["n_wins_base"] == 4 and m["n_failed"] == 0
    assert m["win_rate"] == pytest.approx(10.0)
    assert m["standard_error"] == pytest.approx(0.0, abs=1e-9)
    assert m["length_controlled_winrate"] is None
    assert "df_gamed.csv" in m["length_controlled_note"] and "not computed" in m["length_controlled_note"]
    assert "eval.lc_df_gamed" in m["length_controlled_note"]
    posts = fake_judge.posts("alpaca")
    assert len(posts) == 4
    assert all(p["body"]["model"] == "fake-judge" and p["body"]["top_logprobs"] == 5 for p in posts)
    assert all(p["auth"] == "Bearer sk-test-never-on-disk-4242" for p in posts)
    assert set(fake_judge.item_counts("alpaca")) == set(_sample(4))

    out = tiny_run / "eval" / "alpaca_eval"
    outputs = json.loads((out / "model_outputs.json").read_text())
    assert [set(o) for o in outputs] == [{"instruction", "output", "generator", "dataset"}] * 4
    assert {o["generator"] for o in outputs} == {res["model_name"]}
    assert [o["instruction"] for o in outputs] == _sample(4)
    assert len(read_jsonl(out / "judge_completions.jsonl")) == 4
    results = json.loads((out / "results.json").read_text())
    assert results["judge"]["annotator"] == "weighted_alpaca_eval_gpt4_turbo"
    assert results["judge"]["prompt_version"].startswith("alpaca_eval 0.6")
    assert results["subset"]["n"] == 4 and results["subset"]["of"] == 805
    assert any("not comparable" in n for n in results["notes"])
    assert results["data"]["source"].startswith("local:") and results["data"]["version"].startswith("sha256:")
    assert len(json.loads((out / "annotations.json").read_text())) == 4
    assert_secret_nowhere(tiny_run)
    client_cfg = (out / "annotator" / "client_config.yaml").read_text()
    assert "api_key_env: PREFEXP_TEST_JUDGE_KEY" in client_cfg

    # Re-run: outputs reused, every annotation comes from judge_completions.jsonl (no request).
    evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, data)))
    assert len(fake_judge.posts("alpaca")) == 4
    # A larger limit pays only for the instructions not judged yet.
    res6 = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, data, limit=6)))
    assert len(fake_judge.posts("alpaca")) == 4 + len(set(_sample(6)) - set(_sample(4)))
    assert res6["metrics"]["n_total"] == 6
    assert max(fake_judge.item_counts("alpaca").values()) == 1


def test_rate_limits_server_errors_and_timeouts_are_retried(tiny_run, fake_judge, judge_key):
    fake_judge.fail_next(1, 429)  # three faults in a row: max_retries=3 absorbs them
    fake_judge.fail_next(1, 503)
    fake_judge.hang_next(1, 2.0)
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"), limit=2)
                            + ["eval.judge.timeout_s=0.5", "eval.judge.concurrency=1", "eval.judge.backoff_s=0.01"]))
    assert res["metrics"]["n_total"] == 2
    assert len(fake_judge.posts("fault")) == 2 and len(fake_judge.posts("hang")) == 1


def test_judge_failure_keeps_every_answer_and_rerun_asks_only_the_rest(tiny_run, fake_judge, judge_key):
    """The judge answers 2, then fails for good: exit through IncompleteJudging naming 2 of 4;
    the 2 answers are on disk; the re-run asks for the other 2 only (no item paid twice)."""
    args = _overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"), limit=4) + [
        "eval.judge.concurrency=1", "eval.judge.max_retries=1", "eval.judge.backoff_s=0.01"]
    original = fake_judge.answer_chat
    calls = {"n": 0}

    def answer_then_break(body):
        calls["n"] += 1
        if calls["n"] == 2:
            fake_judge.fail_always(500)
        return original(body)

    fake_judge.answer_chat = answer_then_break
    with pytest.raises(IncompleteJudging, match=r"2 of 4 judgment\(s\) failed.*HTTP 500") as err:
        evaluate(settings(args))
    assert err.value.n_failed == 2
    out = tiny_run / "eval" / "alpaca_eval"
    assert len(read_jsonl(out / "judge_completions.jsonl")) == 2
    assert json.loads((out / "results.json").read_text())["metrics"]["n_failed"] == 2
    fake_judge.answer_chat = original
    fake_judge.clear_faults()
    res = evaluate(settings(args))
    assert res["metrics"]["n_total"] == 4 and res["metrics"]["n_failed"] == 0
    answered = [p["item"] for p in fake_judge.posts("alpaca")]  # 200 answers, both runs
    assert sorted(answered) == sorted(_sample(4))  # each item answered (paid) exactly once
    # all requests: the item that hit the 500s was tried twice (1 + 1 retry), then once more
    assert sorted(fake_judge.item_counts("alpaca").values()) == [1, 1, 1, 3]


def _judging_given_outputs(tmp_path, judge_url, key_env, out: Path) -> list[str]:
    """Judge a given outputs file (no generation) of 4 instructions, one request at a time; half
    the outputs carry the fake judge's ``[GOOD]`` mark, so the verdicts differ between items."""
    outputs = tmp_path / "model_outputs.json"
    outputs.write_text(json.dumps([{"instruction": ins, "output": "[GOOD] fine" if i % 2 else "meh",
                                    "generator": "given"} for i, ins in enumerate(_sample(4))]))
    return [f"outputs={outputs}", "eval=alpaca_eval", "eval.limit=4", f"eval.data_dir={shared_path('alpaca_eval')}",
            f"eval.judge.base_url={judge_url}", "eval.judge.model=fake-judge", f"eval.judge.api_key_env={key_env}",
            "eval.judge.concurrency=1", "eval.judge.max_retries=1", "eval.judge.backoff_s=0.01", "wandb=false",
            f"output_dir={out}"]


def test_unreadable_replies_fail_the_rest_and_rerun_asks_only_those(fake_judge, judge_key, tmp_path):
    """The judge answers 2 of 4, then replies HTTP 200 with JSON cut off mid-body for good: the
    3rd instruction is tried 1 + 1 retry, the 4th not asked; IncompleteJudging names both, the 2
    answers are kept, nothing of the cut-off replies is recorded. Against a healthy judge the
    re-run asks exactly the 2 failed instructions and ends where a run that never failed ends."""
    healthy = evaluate(settings(_judging_given_outputs(tmp_path, fake_judge.url, judge_key, tmp_path / "healthy")))
    assert 0 < healthy["metrics"]["n_wins"] < 4  # the verdicts differ between items
    fake_judge.requests.clear()

    out = tmp_path / "out"
    args = _judging_given_outputs(tmp_path, fake_judge.url, judge_key, out)
    fake_judge.unreadable_always("truncated", after=2)
    with pytest.raises(IncompleteJudging, match=r"2 of 4 judgment\(s\) failed \(.*unreadable reply \(truncated or "
                                                r"invalid JSON: .*; failed: instruction=") as err:
        evaluate(settings(args))
    assert err.value.n_failed == 2 and len(err.value.items) == 2
    answered = [p["item"] for p in fake_judge.posts("alpaca")]
    assert len(answered) == 2 and len(fake_judge.posts("unreadable")) == 2
    assert len(read_jsonl(out / "judge_completions.jsonl")) == 2
    assert read_jsonl(out / "judge_completions.failed.jsonl") == []  # a cut-off reply is no answer
    results = json.loads((out / "results.json").read_text())
    failed = {f["instruction"] for f in results["failed_items"]}
    assert failed == set(_sample(4)) - set(answered)

    fake_judge.clear_faults()
    fake_judge.requests.clear()
    res = evaluate(settings(args))
    assert fake_judge.item_counts("alpaca") == {ins: 1 for ins in failed}
    assert res["metrics"] == healthy["metrics"] and res["failed_items"] == []
    assert res["judge_requests"] == 2 and healthy["judge_requests"] == 4
    # "created" is a wall-clock stamp to the second: it differs only when a second ticks over
    differ = {k for k in res.keys() | healthy.keys() if res.get(k) != healthy.get(k)} - {"created"}
    assert differ == {"judge_requests"}  # judge_requests: what this run paid for


def test_logprobs_dropped_every_third_request(tiny_run, fake_judge, judge_key):
    """12 items, every 3rd request answered without logprobs: 4 failed, not cached, exit path 3
    naming them; the re-run against a healthy judge asks exactly those 4 and gives the full
    result (equal to the 10.0 every item gets)."""
    args = _overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"), limit=12)
    fake_judge.drop_logprobs_every(3)
    with pytest.raises(IncompleteJudging, match="4 of 12 judgment.*no logprobs") as err:
        evaluate(settings(args))
    results = json.loads((tiny_run / "eval" / "alpaca_eval" / "results.json").read_text())
    failed = {f["instruction"] for f in results["failed_items"]}
    assert len(failed) == err.value.n_failed == 4 and results["metrics"]["n_total"] == 8
    fake_judge.clear_faults()
    fake_judge.requests.clear()
    res = evaluate(settings(args))
    assert set(fake_judge.item_counts("alpaca")) == failed
    assert res["metrics"]["n_total"] == 12 and res["metrics"]["n_failed"] == 0
    assert res["metrics"]["win_rate"] == pytest.approx(10.0)


def test_judge_without_logprobs_is_a_setting_error(tiny_run, fake_judge, judge_key):
    """No logprobs in any answer: the weighted annotator cannot work; stop at once with the
    setting named (InputError = exit 2), nothing cached, at most the in-flight requests paid."""
    fake_judge.drop_logprobs_every(1)
    with pytest.raises(JudgeSetupError, match="eval.annotator='weighted_alpaca_eval_gpt4_turbo' reads the "
                                              "judge's logprobs"):
        evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"), limit=12)
                          + ["eval.judge.concurrency=2"]))
    assert 2 <= len(fake_judge.posts("alpaca")) <= 3
    assert read_jsonl(tiny_run / "eval" / "alpaca_eval" / "judge_completions.jsonl") == []


def test_answer_without_a_verdict_is_a_failure(tiny_run, fake_judge, judge_key):
    fake_judge.garbage_every(2)
    with pytest.raises(IncompleteJudging, match="2 of 4.*no preference") as err:
        evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"))
                          + ["eval.judge.concurrency=1"]))
    assert err.value.n_failed == 2
    failed = read_jsonl(tiny_run / "eval" / "alpaca_eval" / "judge_completions.failed.jsonl")
    assert len(failed) == 2 and all("no preference" in r["reason"] for r in failed)


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
    _stand_in_df_gamed(tmp_path / "df_gamed.csv")
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key, shared_path("alpaca_eval"), limit=12)
                            + [f"eval.lc_df_gamed={tmp_path}"]))
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
