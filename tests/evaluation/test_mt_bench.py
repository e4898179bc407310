"""MT-Bench end to end: tiny checkpoint -> answers -> fake judge over HTTP -> scores, resume."""
from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from prefexp.evaluation.judge_client import JudgeClient
from prefexp.evaluation.judging import IncompleteJudging
from prefexp.evaluation.mt_bench import judge_answers
from prefexp.evaluation.mt_bench_score import parse_rating
from prefexp.evaluation.mt_bench_data import load_mt_bench
from prefexp.evaluation.runner import evaluate
from prefexp.evaluation.store import read_jsonl
from tests.evaluation.conftest import CHAT_TEMPLATE, assert_secret_nowhere, settings, shared_path


def _overrides(run, judge_url, key_env, limit=2):
    return [f"checkpoint={run}", "eval=mt_bench", f"eval.limit={limit}",
            f"eval.data_dir={shared_path('mt_bench')}", f"eval.judge.base_url={judge_url}",
            "eval.judge.model=fake-judge", f"eval.judge.api_key_env={key_env}", "eval.judge.backoff_s=0.01",
            "eval.generation.max_new_tokens=6", "eval.generation.device=cpu", "wandb=false"]


def test_end_to_end_limit(tiny_run, fake_judge, judge_key):
    """limit=2 of 8 categories x 10: quotas 0.25 each, the 2 largest remainders go to the first
    names, coding and extraction; seed 0 picks questions 127 and 135. 2 turns each -> 4
    judgments, all [[5]] -> 5.0, flagged as a subset."""
    res = evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key)))
    out = tiny_run / "eval" / "mt_bench"
    assert res["metrics"]["score"] == 5.0
    assert res["metrics"]["turn_1"] == res["metrics"]["turn_2"] == 5.0
    assert res["metrics"]["per_category"] == {"coding": 5.0, "extraction": 5.0}
    assert res["metrics"]["n_judgments"] == 4 and res["metrics"]["n_unparseable"] == 0
    assert res["metrics"]["n_failed"] == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"] == res["metrics"]
    assert saved["subset"]["n"] == 2 and saved["subset"]["of"] == 80
    assert saved["subset"]["per_category"] == {"coding": 1, "extraction": 1}
    assert any("not comparable" in n for n in saved["notes"])
    assert saved["judge"]["model"] == "fake-judge" and saved["judge"]["base_url"] == fake_judge.url
    assert saved["judge"]["prompts"] == ["single-math-v1", "single-math-v1-multi-turn", "single-v1",
                                         "single-v1-multi-turn"]
    assert saved["judge"]["prompt_version"].startswith("FastChat judge_prompts.jsonl sha256:")
    assert saved["generation"]["category_temperatures"]["writing"] == 0.7
    assert saved["data"]["sha256_question"] and saved["data"]["source"].startswith("local:")
    assert saved["checkpoint"]["chat_template_sha256"] == hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()[:16]
    assert saved["prefexp_version"] and "prefexp_commit" in saved
    answers = read_jsonl(out / "model_answer" / f"{res['model_name']}.jsonl")
    assert [a["question_id"] for a in answers] == [127, 135]
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


@pytest.mark.parametrize("text,rating", [("Rating: [[07]]", 7), ("[[8.5]]", 8.5), ("so [9] it is", 9),
                                         ("[[ 7 ]]", -1), ("Rating: 7", -1), ("A fine answer.", -1),
                                         ("[[7]] [[3]]", 7), ("", -1), (None, -1)])
def test_rating_parsing_never_raises(text, rating):
    """FastChat's regexes (``[[N]]``, fallback ``[N]``); [[07]] used to raise SyntaxError in
    ast.literal_eval; the other odd forms are simply unparseable."""
    assert parse_rating(text) == rating


def test_unparseable_reasked_then_failed_then_rerun(tiny_run, fake_judge, judge_key):
    """Turn-1 prompts get ``Rating: [[07]]`` (= 7), turn-2 prompts ``[[ 7 ]]`` (unparseable).
    reparse_retries=1: each turn-2 item is asked twice, then counted failed; the run ends with
    IncompleteJudging (exit 3) after writing results.json with the 2 good ones; the 4 failed
    texts are kept. The re-run against a healthy judge asks for exactly those 2 prompts."""
    turn2 = "### User:\n"  # only the multi-turn prompts show the conversation
    fake_judge.rate = lambda prompt: "[[ 7 ]]" if turn2 in prompt else "Rating: [[07]]"
    args = _overrides(tiny_run, fake_judge.url, judge_key) + ["eval.judge.reparse_retries=1"]
    with pytest.raises(IncompleteJudging) as err:
        evaluate(settings(args))
    assert err.value.n_failed == 2 and err.value.n_items == 4
    assert "no [[rating]] after 2 answer(s)" in str(err.value)
    out = tiny_run / "eval" / "mt_bench"
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"]["n_failed"] == 2 and saved["metrics"]["score"] == 7
    assert saved["metrics"]["turn_2"] is None
    assert sorted((f["question_id"], f["turn"]) for f in saved["failed_items"]) == [(127, 2), (135, 2)]
    failed_rows = read_jsonl(out / "model_judgment" / "fake-judge_single.failed.jsonl")
    assert len(failed_rows) == 4 and {r["judgment"] for r in failed_rows} == {"[[ 7 ]]"}
    final_rows = read_jsonl(out / "model_judgment" / "fake-judge_single.jsonl")
    assert [r["score"] for r in final_rows] == [7, 7]
    asked = fake_judge.item_counts("judge")
    assert sorted(asked.values()) == [1, 1, 2, 2]
    failed_prompts = {p for p, n in asked.items() if n == 2}
    assert all(turn2 in p for p in failed_prompts)

    fake_judge.requests.clear()
    fake_judge.rate = lambda prompt: "Rating: [[6]]"
    res = evaluate(settings(args))
    assert set(fake_judge.item_counts("judge")) == failed_prompts
    assert res["metrics"]["n_failed"] == 0 and res["metrics"]["score"] == 6.5


def test_http_failures_retried_then_rest_resumed(tiny_run, fake_judge, judge_key):
    """429s and 500s within max_retries are absorbed; past it the run stops asking, keeps what
    it got, exits through IncompleteJudging, and the re-run asks only for the missing ones."""
    base = _overrides(tiny_run, fake_judge.url, judge_key) + ["eval.judge.concurrency=1"]
    fake_judge.fail_next(2, 429)
    fake_judge.fail_next(1, 500)
    res = evaluate(settings(base))
    assert res["metrics"]["n_judgments"] == 4
    assert len(fake_judge.posts("fault")) == 3 and len(fake_judge.posts("judge")) == 4

    (tiny_run / "eval" / "mt_bench" / "model_judgment" / "fake-judge_single.jsonl").unlink()
    fake_judge.requests.clear()
    fake_judge.rate = _fail_after(fake_judge, 2)
    with pytest.raises(IncompleteJudging, match="2 of 4 judgment") as err:
        evaluate(settings(base + ["eval.judge.max_retries=1"]))
    assert err.value.n_failed == 2
    kept = read_jsonl(tiny_run / "eval" / "mt_bench" / "model_judgment" / "fake-judge_single.jsonl")
    assert len(kept) == 2
    fake_judge.clear_faults()
    fake_judge.rate = lambda prompt: "Rating: [[5]]"
    fake_judge.requests.clear()
    res = evaluate(settings(base))
    assert len(fake_judge.posts("judge")) == 2 and res["metrics"]["n_judgments"] == 4


def test_unreachable_judge_mid_run_counts_everything_left(tiny_run, fake_judge, judge_key):
    """A judge that answers nothing (500 on every request, past 1 retry): the first failure stops
    the asking; every item is failed, nothing is cached, and nothing crashes."""
    fake_judge.fail_always(500)
    with pytest.raises(IncompleteJudging) as err:
        evaluate(settings(_overrides(tiny_run, fake_judge.url, judge_key)
                          + ["eval.judge.concurrency=1", "eval.judge.max_retries=1"]))
    assert err.value.n_failed == 4
    assert "not asked" in str(err.value) and "HTTP 500" in str(err.value)
    assert len(fake_judge.posts("fault")) == 2  # one item, asked once + one retry; the rest never sent
    assert not read_jsonl(tiny_run / "eval" / "mt_bench" / "model_judgment" / "fake-judge_single.jsonl")


def _fail_after(server, n_ok):
    """A rate() that answers n_ok times, then makes the server return 500 for good."""
    calls = {"n": 0}

    def rate(prompt):
        calls["n"] += 1
        if calls["n"] == n_ok:
            server.fail_always(500)
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
    rows, failures = judge_answers(data, data.questions, [answers[q["question_id"]] for q in data.questions],
                                   model, client, tmp_path / "j.jsonl", concurrency=8)
    assert failures == []
    assert len(fake_judge.posts("judge")) == 160
    m = score_judgments(rows, {q["question_id"]: q["category"] for q in data.questions})
    assert (round(m["turn_1"], 6), round(m["turn_2"], 6), round(m["score"], 6)) == (8.0375, 7.35, 7.69375)
