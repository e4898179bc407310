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
