"""MT-Bench end to end: tiny checkpoint -> answers -> fake judge over HTTP -> scores, resume."""
from __future__ import annotations

import gzip
import json

import pytest

from prefexp.evaluation.judge_client import JudgeClient, JudgeError
from prefexp.evaluation.mt_bench import judge_answers
from prefexp.evaluation.mt_bench_data import load_mt_bench
from prefexp.evaluation.runner import evaluate
from prefexp.evaluation.store import read_jsonl
from tests.evaluation.conftest import assert_secret_nowhere, settings, shared_path


def _overrides(run, judge_url, key_env, limit=2):
    return [f"checkpoint={run}", "eval=mt_bench", f"eval.limit={limit}",
            f"eval.data_dir={shared_path('mt_bench')}", f"eval.judge.base_url={judge_url}",
            "eval.judge.model=fake-judge", f"eval.judge.api_key_env={key_env}", "eval.judge.backoff_s=0.01",
            "eval.generation.max_new_tokens=6", "eval.generation.device=cpu", "wandb=false"]


def test_end_to_end_limit(tiny_run, fake_judge, judge_key):
    """limit=2 -> questions 81, 82 (writing), 2 turns each -> 4 judgments, all [[5]] -> 5.0."""
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key)))
    out = tiny_run / "eval" / "mt_bench"
    assert res["metrics"]["score"] == 5.0
    assert res["metrics"]["turn_1"] == res["metrics"]["turn_2"] == 5.0
    assert res["metrics"]["per_category"] == {"writing": 5.0}
    assert res["metrics"]["n_judgments"] == 4 and res["metrics"]["n_unparseable"] == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"] == res["metrics"]
    assert saved["judge"]["model"] == "fake-judge"
    assert saved["judge"]["prompts"] == ["single-v1", "single-v1-multi-turn"]
    assert saved["generation"]["category_temperatures"]["writing"] == 0.7
    assert saved["data"]["sha256_question"] and saved["data"]["source"].startswith("local:")
    answers = read_jsonl(out / "model_answer" / f"{res['model_name']}.jsonl")
    assert [a["question_id"] for a in answers] == [81, 82]
    assert all(len(a["choices"][0]["turns"]) == 2 for a in answers)
    judge_posts = fake_judge.posts("judge")
    assert len(judge_posts) == 4
    assert all(p["auth"] == "Bearer sk-test-never-on-disk-4242" for p in judge_posts)
    assert {p["body"]["temperature"] for p in judge_posts} == {0.0}
    # Turn 2 is judged with the multi-turn prompt, which shows the first answer too.
    assert any("### Assistant A:" in p["body"]["messages"][1]["content"] for p in judge_posts)
    assert_secret_nowhere(tiny_run)

    # A re-run with nothing changed neither generates nor pays the judge again.
    answers_file = out / "model_answer" / f"{res['model_name']}.jsonl"
    mtime = answers_file.stat().st_mtime_ns
    evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key)))
    assert len(fake_judge.posts("judge")) == 4 and answers_file.stat().st_mtime_ns == mtime
    # Other generation settings: the answers are generated again (and so judged again).
    evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key) + ["eval.generation.max_new_tokens=3"]))
    assert answers_file.stat().st_mtime_ns != mtime
    assert json.loads((out / "model_answer" / f"{res['model_name']}.meta.json").read_text())[
        "generation"]["max_new_tokens"] == 3


def test_unparseable_counted_and_excluded(tiny_run, fake_judge, judge_key):
    fake_judge.rate = lambda prompt: "no verdict" if "### User:" in prompt else "Rating: [[8]]"
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key)))
    m = res["metrics"]
    assert m["n_unparseable"] == 2 and m["turn_2"] is None
    assert m["score"] == m["turn_1"] == 8.0
    assert any("no [[rating]]" in n for n in res["notes"])


def test_retries_then_resume(tiny_run, fake_judge, judge_key):
    """429s and 500s within max_retries are absorbed; past it the run fails, keeps what it got,
    and the re-run asks only for the missing judgments."""
    base = _overrides(tiny_run, fake_judge.url, judge_key) + ["eval.judge.concurrency=1"]
    fake_judge.fail_next(2, 429)
    fake_judge.fail_next(1, 500)
    res = evaluate(settings(base))
    assert res["metrics"]["n_judgments"] == 4
    assert len(fake_judge.posts("fault")) == 3 and len(fake_judge.posts("judge")) == 4

    (tiny_run / "eval" / "mt_bench" / "model_judgment" / "fake-judge_single.jsonl").unlink()
    fake_judge.requests.clear()
    fake_judge.rate = _fail_after(fake_judge, 2)
    with pytest.raises(JudgeError, match="kept in .*re-run resumes"):
        evaluate(settings(base + ["eval.judge.max_retries=1"]))
    kept = read_jsonl(tiny_run / "eval" / "mt_bench" / "model_judgment" / "fake-judge_single.jsonl")
    assert len(kept) == 2
    fake_judge.clear_faults()
    fake_judge.rate = lambda prompt: "Rating: [[5]]"
    fake_judge.requests.clear()
    res = evaluate(settings(base))
    assert len(fake_judge.posts("judge")) == 2 and res["metrics"]["n_judgments"] == 4


def _fail_after(server, n_ok):
    """A rate() that answers n_ok times, then makes the server return 500 for good."""
    calls = {"n": 0}

    def rate(prompt):
        calls["n"] += 1
        if calls["n"] == n_ok:
            server.fail_next(100, 500)
        return "Rating: [[5]]"

    return rate


def test_replayed_gpt4_judgments_reproduce_expected_scores(fake_judge, judge_key, tmp_path):
    """The judging path itself (prompts built here, sent over HTTP, parsed, scored) reproduces
    the stored real GPT-4 averages when the fake judge replays GPT-4's texts for each prompt.
    mistral-7b-instruct-v0.2: 8.0375 / 7.35 / 7.69375 (expected_scores_show_result_rule.csv)."""
    root = shared_path("mt_bench")
    data = load_mt_bench(str(root), tmp_path, "unused", "gpt-4")
    model = "mistral-7b-instruct-v0.2"
    with gzip.open(root / "model_judgment" / f"eva_{model}_gpt-4_single.jsonl.gz", "rt") as f:
        fake_judge.replay = {r["user_prompt"]: r["judgment"] for r in map(json.loads, f)}
    answers = {r["question_id"]: r for r in read_jsonl(root / "model_answer" / f"{model}.jsonl")}
    from prefexp.evaluation.config import JudgeConfig
    from prefexp.evaluation.mt_bench_score import score_judgments

    client = JudgeClient(JudgeConfig(base_url=fake_judge.url, model="gpt-4", api_key_env=judge_key))
    rows = judge_answers(data, data.questions, [answers[q["question_id"]] for q in data.questions], model,
                         client, tmp_path / "j.jsonl", concurrency=8)
    assert len(fake_judge.posts("judge")) == 160
    m = score_judgments(rows, {q["question_id"]: q["category"] for q in data.questions})
    assert (round(m["turn_1"], 6), round(m["turn_2"], 6), round(m["score"], 6)) == (8.0375, 7.35, 7.69375)
