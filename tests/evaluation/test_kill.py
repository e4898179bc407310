"""kill -9 half-way through judging, then the same command again: no item is paid twice beyond
the requests that were in flight, and the numbers equal an uninterrupted run.

The judge is the fake server in this process, replaying real judge answers (GPT-4's MT-Bench
texts, the AE2 judge's logprobs) with a small delay, so a kill lands mid-run; the evaluation is
the public command in a subprocess. ~1 min (two interpreter starts), hence ``slow``.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefexp.evaluation.runner import evaluate
from tests.evaluation.conftest import KEY_ENV, SECRET, settings, shared_path

REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 4


def _gz_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _kill_half_way(args: list[str], fake, kind: str, n_total: int, cwd: Path) -> int:
    """Start the command, SIGKILL it once the judge has received half the requests; returns how
    many it had received by then."""
    env = {**os.environ, KEY_ENV: SECRET, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "prefexp.evaluate", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while sum(fake.item_counts(kind).values()) < n_total // 2:
            assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before half-way"
            assert time.monotonic() < deadline, "judge requests never reached half-way"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return sum(fake.item_counts(kind).values())


def _check(fake, kind: str, n_total: int) -> None:
    counts = fake.item_counts(kind)
    assert len(counts) == n_total  # every item asked
    twice = [n for n in counts.values() if n > 1]
    print(f"{kind}: {len(counts)} items, {sum(counts.values())} requests, {len(twice)} item(s) asked twice")
    # only requests in flight at the kill can have been paid without being kept
    assert len(twice) <= CONCURRENCY and max(counts.values()) <= 2, counts


@pytest.mark.slow
def test_mt_bench_kill_and_rerun(tmp_path, fake_judge, judge_key):
    model = "mistral-7b-instruct-v0.2"
    fake_judge.replay = {r["user_prompt"]: r["judgment"]
                         for r in _gz_rows(shared_path("mt_bench", "model_judgment", f"eva_{model}_gpt-4_single.jsonl.gz"))}
    fake_judge.delay_s = 0.05
    common = [f"outputs={shared_path('mt_bench', 'model_answer', f'{model}.jsonl')}", "eval=mt_bench",
              "eval.limit=40", f"eval.data_dir={shared_path('mt_bench')}", f"eval.judge.base_url={fake_judge.url}",
              "eval.judge.model=gpt-4", f"eval.judge.api_key_env={KEY_ENV}", f"eval.judge.concurrency={CONCURRENCY}",
              "wandb=false"]
    _kill_half_way(common + [f"output_dir={tmp_path / 'killed'}"], fake_judge, "judge", 80, tmp_path)
    resumed = evaluate(settings(common + [f"output_dir={tmp_path / 'killed'}"]))
    _check(fake_judge, "judge", 80)
    fake_judge.requests.clear()
    whole = evaluate(settings(common + [f"output_dir={tmp_path / 'whole'}"]))
    assert sum(fake_judge.item_counts("judge").values()) == 80
    assert resumed["metrics"] == whole["metrics"] and resumed["metrics"]["n_judgments"] == 80


@pytest.mark.slow
def test_alpaca_eval_kill_and_rerun(tmp_path, fake_judge, judge_key):
    pytest.importorskip("alpaca_eval")
    model = "gpt-3.5-turbo-1106"
    annotations = _gz_rows(shared_path("alpaca_eval", "annotations_weighted_alpaca_eval_gpt4_turbo", f"{model}.jsonl.gz"))
    fake_judge.replay_logprobs = {a["instruction"]: a["judge_top_logprobs"] for a in annotations}
    fake_judge.delay_s = 0.1
    common = [f"outputs={shared_path('alpaca_eval', 'model_outputs', f'{model}.jsonl.gz')}", "eval=alpaca_eval",
              "eval.limit=40", f"eval.data_dir={shared_path('alpaca_eval')}", f"eval.judge.base_url={fake_judge.url}",
              f"eval.judge.api_key_env={KEY_ENV}", f"eval.judge.concurrency={CONCURRENCY}", "wandb=false"]
    _kill_half_way(common + [f"output_dir={tmp_path / 'killed'}"], fake_judge, "alpaca", 40, tmp_path)
    resumed = evaluate(settings(common + [f"output_dir={tmp_path / 'killed'}"]))
    _check(fake_judge, "alpaca", 40)
    fake_judge.requests.clear()
    whole = evaluate(settings(common + [f"output_dir={tmp_path / 'whole'}"]))
    assert sum(fake_judge.item_counts("alpaca").values()) == 40
    for key in ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_total"):
        assert resumed["metrics"][key] == whole["metrics"][key], key
    assert resumed["metrics"]["n_total"] == 40
