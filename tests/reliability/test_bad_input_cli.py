"""Issue 21's input cases through ``python -m prefexp.train``: each was a traceback or exit 1 on main;
now one ``error:`` line, exit 2, no traceback, and the API key in the environment is never printed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SECRET = "sk-test-SECRET-h21"


def run_cli(args: list[str]) -> tuple[int, str]:
    """(exit code, stderr then stdout)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": SECRET}
    proc = subprocess.run([sys.executable, "-m", "prefexp.train", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)
    assert SECRET not in proc.stdout + proc.stderr  # no message, no log line carries the key
    return proc.returncode, proc.stderr + proc.stdout  # Hydra's console log (warnings) is stdout


def write_rows(path: Path, scores: list[tuple[float, float]]) -> str:
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}",
                                        "score_chosen": c, "score_rejected": r}) + "\n"
                            for i, (c, r) in enumerate(scores)))
    return str(path)


def one_error(code: int, stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    return errors[0]


CONFIG_CASES = [
    (["tau=${oc.env:OPENAI_API_KEY}"], ["tau='${oc.env:OPENAI_API_KEY}'", "<redacted $OPENAI_API_KEY>"]),
    (["seed=-1"], ["seed=-1 is outside [0, 2**32 - 1]"]),
    (["experiment=nonexistent"], ["experiment=nonexistent is not an option of the config group 'experiment'",
                                  "sandbox_mixdpo"]),
    (["loss=dpoo"], ["did you mean loss=dpo?"]),
]


@pytest.mark.parametrize("overrides,expect", CONFIG_CASES, ids=["secret_interpolation", "seed", "experiment", "loss"])
def test_config_case_is_one_error_line(overrides, expect, tmp_path):
    text = one_error(*run_cli(["dry_run=true", "logger=none", f"hydra.run.dir={tmp_path / 'run'}", *overrides]))
    for want in expect:
        assert want in text, text


def test_overflowing_margin_is_refused_with_the_row(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [(9, 2), (8, 1), (1e308, -1e308)])
    text = one_error(*run_cli(["dry_run=true", "logger=none", f"hydra.run.dir={tmp_path / 'run'}",
                               "dataset=jsonl", f"dataset.path={path}"]))
    assert f"{path}, line 3: margin score_chosen - score_rejected" in text and "not finite" in text, text


def test_absurd_accumulation_is_refused_with_the_numbers(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [(9, 2)] * 10)
    text = one_error(*run_cli(["dry_run=true", "logger=none", f"hydra.run.dir={tmp_path / 'run'}", "dataset=jsonl",
                               f"dataset.path={path}", "trainer.per_device_batch_size=2",
                               "trainer.gradient_accumulation_steps=100000000"]))
    assert "2 (trainer.per_device_batch_size) x 100000000 x 1 (ranks) = 200000000 pairs" in text, text
    assert "the data has 10 training pairs" in text and "gradient_accumulation_steps=5 or less" in text, text


def test_mostly_negative_margins_warn_once_with_the_fix(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [(2, 8)] * 7 + [(9, 1)] * 3)
    code, stderr = run_cli(["dry_run=true", "logger=none", f"hydra.run.dir={tmp_path / 'run'}",
                            "dataset=jsonl", f"dataset.path={path}"])
    assert code == 0, stderr[-2000:]
    warnings = [line for line in stderr.splitlines() if "score_chosen < score_rejected" in line]
    assert len(warnings) == 1 and "7 of 10 scored pairs" in warnings[0], stderr[-2000:]
    assert "dataset.columns.chosen=rejected dataset.columns.rejected=chosen" in warnings[0]
