"""A resume that refuses a changed run (prefexp/launch/run_config.py), through ``python -m prefexp.train``:
a fresh run records run_config.json; a resume with another config exits 2 in one line naming the
keys and leaves every file as it was; an allowlisted change resumes; ``trainer.resume=never`` starts
over with the previous run set aside; a run dir from before run_config.json resumes with a warning."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prefexp.errors import InputError
from prefexp.launch.run_config import (RUN_CONFIG, read_record, restore_hydra_files, run_record,
                                       set_previous_run_aside)
from tests.helpers import REPO, read_jsonl

from .faults import SANDBOX

FIRST = ["loss=mixdpo", "trainer.max_steps=4", "trainer.save_steps=2", "dataset.max_rows=64"]
ISSUE_CASE = ["loss=dpo", "trainer.learning_rate=1e-3", "dataset.max_rows=32", "trainer.max_steps=6"]
SECRET = "sk-test-SECRET-resume"


def train(run_dir: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "prefexp.train", f"hydra.run.dir={run_dir}", *SANDBOX, *overrides]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def files(run_dir: Path) -> dict[str, str]:
    """Every file of the run dir with its content hash (train.log aside: a log may grow)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != "train.log"}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("first") / "run"
    proc = train(run_dir, *FIRST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture
def run_dir(first_run, tmp_path) -> Path:
    """A copy of the finished 4-step run (checkpoints 2 and 4, final checkpoint) for one test."""
    return Path(shutil.copytree(first_run, tmp_path / "run", symlinks=True))


def test_a_fresh_run_records_its_config(first_run):
    record = json.loads((first_run / RUN_CONFIG).read_text())
    assert record["format"] == 1 and record["world_size"] == 1 and record["choices"]["loss"] == "mixdpo"
    assert record["config"]["trainer"]["max_steps"] == 4 and record["config"]["dataset"]["max_rows"] == 64
    assert record["hydra_files"]["config.yaml"] == (first_run / ".hydra" / "config.yaml").read_text()


def test_the_issue_case_is_refused_naming_the_keys_and_changes_nothing(run_dir):
    before = files(run_dir)
    proc = train(run_dir, *ISSUE_CASE)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    match = re.fullmatch(rf"error: {re.escape(str(run_dir))} holds a run with another config: (.*) ; resume it with "
                         r"the same config, choose a new hydra\.run\.dir, or pass trainer\.resume=never to start it over",
                         errors[0])
    assert match, errors[0]
    assert [part.split(": ")[0] for part in match.group(1).split(", ")] == ["loss", "dataset.max_rows",
                                                                             "trainer.learning_rate"], errors[0]
    assert "loss: mixdpo -> dpo" in errors[0] and "trainer.learning_rate: 5e-05 -> 0.001" in errors[0]
    assert files(run_dir) == before, "checkpoints, manifest, .hydra/*.yaml and run_config.json as they were"


def test_a_secret_in_a_changed_value_is_never_printed(run_dir):
    proc = train(run_dir, *FIRST, "dataset.split=${oc.env:OPENAI_API_KEY}", env={"OPENAI_API_KEY": SECRET})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert SECRET not in proc.stderr + proc.stdout
    assert "dataset.split: train -> <redacted $OPENAI_API_KEY>" in proc.stderr


def test_the_same_config_with_more_steps_resumes(run_dir):
    recorded = (run_dir / RUN_CONFIG).read_text()
    proc = train(run_dir, *FIRST, "trainer.max_steps=6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / 'checkpoint-4'}" in proc.stdout + proc.stderr
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"] == 6
    assert (run_dir / RUN_CONFIG).read_text() == recorded, "still the config of the run's start"


def test_resume_never_starts_over_with_the_previous_run_set_aside(run_dir):
    old = files(run_dir)
    proc = train(run_dir, *ISSUE_CASE[:3], "trainer.max_steps=3", "trainer.resume=never")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" not in proc.stdout + proc.stderr
    aside = run_dir / "previous-run-1"
    moved = {k: v for k, v in old.items() if not k.startswith(".hydra/")}
    assert files(aside) == moved, "the whole previous run, untouched"
    steps = [int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*")]
    assert max(steps) == 3, "the new run's checkpoints only (the old checkpoint-4 would be resumed from)"
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3]
    record = json.loads((run_dir / RUN_CONFIG).read_text())
    assert record["choices"]["loss"] == "dpo" and record["config"]["trainer"]["learning_rate"] == 1e-3


def test_a_run_dir_without_run_config_resumes_with_a_warning(run_dir):
    (run_dir / RUN_CONFIG).unlink()  # as an older prefexp left it
    proc = train(run_dir, *FIRST, "trainer.max_steps=5")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "has no run_config.json" in output and "without checking" in output
    assert "resuming from" in output


def test_the_record_redacts_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    record = run_record({"dataset": {"split": f"x{SECRET}"}, "evaluate": [SECRET]}, {"loss": "dpo", "hydra/env": "d"},
                        1, None)
    assert SECRET not in json.dumps(record)
    assert record["config"]["dataset"]["split"] == "x<redacted $OPENAI_API_KEY>"
    assert record["choices"] == {"loss": "dpo"}


def test_hydra_files_are_restored_and_new_ones_removed(tmp_path):
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        (hydra / name).write_text("refused launch")
    restore_hydra_files(hydra, {"hydra_files": {"config.yaml": "old config", "overrides.yaml": "old overrides"}})
    assert (hydra / "config.yaml").read_text() == "old config"
    assert (hydra / "overrides.yaml").read_text() == "old overrides"
    assert not (hydra / "hydra.yaml").exists(), "the fresh run had none"


def test_setting_aside_keeps_this_launchs_files_and_numbers_the_folders(tmp_path):
    for name in (".hydra/config.yaml", "train.log", ".run.lock", "metrics.jsonl", "checkpoints/checkpoint-2/x"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    assert set_previous_run_aside(tmp_path) == tmp_path / "previous-run-1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hydra", ".run.lock", "previous-run-1", "train.log"]
    assert (tmp_path / "previous-run-1" / "checkpoints" / "checkpoint-2" / "x").is_file()
    assert set_previous_run_aside(tmp_path) is None, "nothing of a previous run left: nothing moved"
    (tmp_path / "metrics.jsonl").write_text("again")
    assert set_previous_run_aside(tmp_path) == tmp_path / "previous-run-2"


def test_an_unreadable_record_is_an_input_error(tmp_path):
    (tmp_path / RUN_CONFIG).write_text("{trunc")
    with pytest.raises(InputError, match="cannot be read"):
        read_record(tmp_path / RUN_CONFIG)
    (tmp_path / RUN_CONFIG).write_text(json.dumps({"format": 99}))
    with pytest.raises(InputError, match="has format 99"):
        read_record(tmp_path / RUN_CONFIG)
