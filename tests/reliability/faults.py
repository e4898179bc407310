"""Shared by the fault-injection tests: the tiny sandbox run, started in the background so that a
test can signal or kill it at a chosen point, and the final weights to compare."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO

# The same small sandbox as tests/engine/test_end_to_end.py (shares its cached model build).
SANDBOX = ["trainer.logging_steps=1", "dataset.sandbox.num_prompts=400", "model.sandbox.sft_steps=80",
           "model.sandbox.num_prompts=400", "logger=none", "evaluate=[]"]


def start(run_dir: Path, *overrides: str, env: dict | None = None, log_name: str = "stderr") -> tuple[subprocess.Popen, Path]:
    """``python -m prefexp.train`` in the background; stdout+stderr to ``<run_dir>.<log_name>.log``."""
    log = run_dir.parent / f"{run_dir.name}.{log_name}.log"
    cmd = [sys.executable, "-m", "prefexp.train", f"hydra.run.dir={run_dir}", *SANDBOX, *overrides]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    return proc, log


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Poll until ``condition()``; fails with the log's end if the run exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) before the point to interrupt it:\n"
                                 + log.read_text()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting:\n" + log.read_text()[-3000:])
        time.sleep(0.2)


def logged_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    import json

    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip().endswith("}")]
    return max(steps, default=0)


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 900) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("run did not finish:\n" + log.read_text()[-3000:]) from None


def final_weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "checkpoint" / "model.safetensors")
