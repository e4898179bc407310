"""Scaling tests: the tiny GPT-2 from ../shared/data on CPU, run through the real entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
TINY_MODEL = SHARED / "models" / "tiny-gpt2"
TINY_DATA = SHARED / "preference" / "ultrafeedback" / "trl_ultrafeedback_binarized_train1000.jsonl.gz"

# The cheap end-to-end setup (64 UltraFeedback pairs, 2 steps, no W&B).
TINY = ["model=hf", f"model.name_or_path={TINY_MODEL}", "dataset=ultrafeedback", f"dataset.path={TINY_DATA}",
        "dataset.on_invalid=skip", "dataset.max_length=128", "dataset.max_prompt_length=64", "dataset.max_rows=64",
        "trainer.max_steps=2", "logger=none"]


@pytest.fixture
def tiny() -> list[str]:
    if not (TINY_MODEL / "config.json").exists() or not TINY_DATA.exists():
        pytest.skip("../shared/data (tiny-gpt2, UltraFeedback slice) is not beside the repo")
    return list(TINY)


LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def clean_env(env: dict | None = None) -> dict:
    """os.environ plus ``env``, without a launcher's variables (never inherited from the test runner)."""
    full_env = {**os.environ, **(env or {})}
    for key in LAUNCHER_ENV:
        full_env.pop(key, None)
    return full_env


def run(cmd: list[str], timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command in the repo root; fail with its output tail on a non-zero exit."""
    full_env = clean_env(env)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def train_cmd(*overrides: str) -> list[str]:
    from tests.helpers import without_default_evaluation

    return [sys.executable, "-m", "prefexp.train", *without_default_evaluation(overrides)]


from tests.helpers import read_jsonl  # noqa: E402,F401  (re-exported for the scale tests)
