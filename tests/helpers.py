"""Helpers the test modules share: run the real training entry point, read a run's JSON lines."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def without_default_evaluation(overrides) -> list[str]:
    """``overrides`` + ``evaluate=[]`` unless they say what to evaluate: on the sandbox model a run
    evaluates itself by default (1000 prompts), which a test of anything else need not pay for."""
    overrides = list(overrides)
    return overrides if any(o.lstrip("+~").startswith("evaluate=") for o in overrides) else [*overrides, "evaluate=[]"]


def run_train(run_dir: Path, *overrides: str, ok: bool = True, timeout: int = 900,
              default_evaluation: bool = False) -> subprocess.CompletedProcess:
    """``python -m prefexp.train hydra.run.dir=<run_dir> <overrides>`` in a subprocess (the real
    entry point); with ``ok`` the exit code must be 0 (the assertion shows the end of stderr).
    No evaluation unless the overrides ask for one or ``default_evaluation``."""
    if not default_evaluation:
        overrides = tuple(without_default_evaluation(overrides))
    cmd = [sys.executable, "-m", "prefexp.train", f"hydra.run.dir={run_dir}", *overrides]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
