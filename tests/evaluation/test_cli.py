"""``python -m prefexp.evaluate`` as a user runs it: exit codes, messages, files, no Hydra noise."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.evaluation.conftest import KEY_ENV, SECRET, assert_secret_nowhere, shared_path

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, KEY_ENV: SECRET, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "prefexp.evaluate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_missing_entry_exit_2(tmp_path):
    proc = _run([], tmp_path / "cwd")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: give exactly one of checkpoint=") and "Traceback" not in proc.stderr
    assert list((tmp_path / "cwd").iterdir()) == []  # Hydra wrote nothing into the working dir


def test_bad_config_lists_every_problem(tmp_path, tiny_run):
    proc = _run([f"checkpoint={tiny_run}", "eval=mt_bench", "eval.judge.base_url=null", "eval.limit=-1",
                 "eval.judge.api_key_env=PREFEXP_SURELY_UNSET"], tmp_path)
    assert proc.returncode == 2
    for key in ("eval.judge.base_url is not set", "eval.limit=-1", "PREFEXP_SURELY_UNSET"):
        assert key in proc.stderr, proc.stderr


def test_unreachable_judge_fails_before_generating(tmp_path, tiny_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    proc = _run([f"checkpoint={tiny_run}", "eval=mt_bench", f"eval.data_dir={shared_path('mt_bench')}",
                 f"eval.judge.base_url=http://127.0.0.1:{port}/v1", f"eval.judge.api_key_env={KEY_ENV}"], tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "unreachable" in proc.stderr
    assert "rerun (judgments received so far are kept): python -m prefexp.evaluate checkpoint=" in proc.stderr
    assert time.monotonic() - t0 < 60
    assert not (tiny_run / "eval" / "mt_bench" / "model_answer").exists()


def test_mt_bench_end_to_end(tmp_path, tiny_run, fake_judge):
    proc = _run([f"checkpoint={tiny_run / 'checkpoint'}", "eval=mt_bench", "eval.limit=1",
                 f"eval.data_dir={shared_path('mt_bench')}", f"eval.judge.base_url={fake_judge.url}",
                 "eval.judge.model=fake-judge", f"eval.judge.api_key_env={KEY_ENV}",
                 "eval.generation.max_new_tokens=4"], tmp_path / "cwd")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tiny_run / "checkpoint" / "eval" / "mt_bench"  # given a checkpoint dir: eval/ goes there
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["score"] == 5.0 and results["n_items"] == 1 and results["limit"] == 1
    assert results["wandb"].startswith("skipped")
    summary = [line for line in proc.stdout.splitlines() if line.startswith("mt_bench ")]
    assert summary == ["mt_bench run-step7: score=5.000000 turn_1=5.000000 turn_2=5.000000 n_unparseable=0 "
                       "(n=1 of 80: subset, not comparable to full-set numbers, judge fake-judge)"]
    assert (out / "eval.log").is_file() and (out / "config.json").is_file()
    assert "HTTP Request:" not in proc.stdout + proc.stderr  # httpx's line per judge call
    assert "HTTP Request:" not in (out / "eval.log").read_text()
    assert list((tmp_path / "cwd").iterdir()) == []  # no outputs/, .hydra/ or log in the working dir
    assert SECRET not in proc.stdout + proc.stderr
    assert_secret_nowhere(tiny_run)


def test_failed_judgments_exit_3_with_count_and_rerun(tmp_path, fake_judge):
    """Every MT-Bench answer without a [[rating]]: no traceback, exit 3, the count and the
    command to run again; the answers the judge gave are saved."""
    fake_judge.rate = lambda prompt: "Rating: 7"
    answers = shared_path("mt_bench", "model_answer", "alpaca-13b.jsonl")
    out = tmp_path / "out"
    proc = _run([f"outputs={answers}", "eval=mt_bench", "eval.limit=2", f"eval.data_dir={shared_path('mt_bench')}",
                 f"eval.judge.base_url={fake_judge.url}", "eval.judge.model=fake-judge",
                 f"eval.judge.api_key_env={KEY_ENV}", "eval.judge.reparse_retries=0", f"output_dir={out}"],
                tmp_path / "cwd")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "error: 4 of 4 judgment(s) failed (4 x no [[rating]] after 1 answer(s)" in proc.stderr
    assert f"rerun: python -m prefexp.evaluate outputs={answers} eval=mt_bench" in proc.stderr
    assert len([json.loads(x) for x in (out / "model_judgment" / "fake-judge_single.failed.jsonl").open()]) == 4


def _mt_bench_judging(answers: Path, judge_url: str, out: Path) -> list[str]:
    return [f"outputs={answers}", "eval=mt_bench", "eval.limit=2", f"eval.data_dir={shared_path('mt_bench')}",
            f"eval.judge.base_url={judge_url}", "eval.judge.model=fake-judge", f"eval.judge.api_key_env={KEY_ENV}",
            "eval.judge.concurrency=1", "eval.judge.max_retries=1", "eval.judge.backoff_s=0.01",
            "wandb=false", f"output_dir={out}"]


def _rating(prompt: str) -> str:
    """A rating that differs between prompts, so a judgment kept for the wrong item shows."""
    return f"Rating: [[{len(prompt) % 9 + 1}]]"


def test_unreadable_replies_exit_3_keep_answers_and_rerun_asks_only_the_failed(tmp_path, fake_judge):
    """limit=2: 4 judgments, asked one at a time. The judge answers 2, then sends an HTML page
    with HTTP 200 for good (a proxy in front of it broke): the 3rd item is tried 1 + 1 retry,
    the 4th is not asked. Exit 3, no traceback, both failed items named; the 2 answers are kept,
    the HTML never recorded as a judgment. The same command against a healthy judge asks for
    exactly the 2 missing prompts and ends with the results of a run that never failed."""
    fake_judge.rate = _rating
    answers = shared_path("mt_bench", "model_answer", "alpaca-13b.jsonl")
    healthy = _run(_mt_bench_judging(answers, fake_judge.url, tmp_path / "healthy"), tmp_path / "cwd")
    assert healthy.returncode == 0, healthy.stderr[-2000:]
    all_prompts = set(fake_judge.item_counts("judge"))
    assert len(all_prompts) == 4
    fake_judge.requests.clear()

    out = tmp_path / "out"
    fake_judge.unreadable_always("html", after=2)
    proc = _run(_mt_bench_judging(answers, fake_judge.url, out), tmp_path / "cwd")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: 2 of 4 judgment(s) failed (1 x judge error: judge endpoint "
                                  f"{fake_judge.url}: unreadable reply (body is not a JSON object, it begins "
                                  "'<!DOCTYPE html>"), proc.stderr
    assert "; failed: question_id=135 turn=1, question_id=135 turn=2 (all listed in failed_items)" in proc.stderr
    assert f"rerun: python -m prefexp.evaluate outputs={answers} eval=mt_bench" in proc.stderr
    assert "unreadable reply (body is not a JSON object" in proc.stdout  # the retry warning, logged
    answered = {p["item"] for p in fake_judge.posts("judge")}
    assert len(answered) == 2 and len(fake_judge.posts("unreadable")) == 2
    results = json.loads((out / "results.json").read_text())
    assert [(f["question_id"], f["turn"]) for f in results["failed_items"]] == [(135, 1), (135, 2)]
    kept = [json.loads(x) for x in (out / "model_judgment" / "fake-judge_single.jsonl").open()]
    assert {r["user_prompt"] for r in kept} == answered
    assert all(r["judgment"] == _rating(r["user_prompt"]) for r in kept)
    failed_log = out / "model_judgment" / "fake-judge_single.failed.jsonl"
    assert not failed_log.exists() or failed_log.read_text() == ""  # HTML is no judgment, not even a failed one

    fake_judge.clear_faults()
    fake_judge.requests.clear()
    rerun = _run(_mt_bench_judging(answers, fake_judge.url, out), tmp_path / "cwd")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert fake_judge.item_counts("judge") == {p: 1 for p in all_prompts - answered}
    final = json.loads((out / "results.json").read_text())
    reference = json.loads((tmp_path / "healthy" / "results.json").read_text())
    assert final["metrics"]["n_judgments"] == 4 and final["metrics"]["n_failed"] == 0
    assert final["failed_items"] == [] and final["metrics"] == reference["metrics"]
    # only the wall-clock stamp may differ (and only when a second ticks over between the runs)
    assert {k for k in final.keys() | reference.keys() if final.get(k) != reference.get(k)} <= {"created"}
