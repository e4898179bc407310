"""Non-finite guard (prefexp/engine/nonfinite.py): a NaN / inf loss or gradient norm stops the run
at that step naming the step, the batch's dataset rows and the last good checkpoint, and nothing
non-finite is saved; trainer.on_nonfinite=skip skips such batches and counts them."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch

from prefexp.engine.nonfinite import EXIT_NONFINITE, NonFiniteGuard, NonFiniteStop
from tests.helpers import read_jsonl, run_train

from .faults import SANDBOX


def test_guard_reports_the_first_non_finite_quantity_of_a_step():
    guard = NonFiniteGuard("stop")
    guard.see_micro_batch([4, 7], torch.tensor(0.69))
    assert guard.problem(torch.tensor(1.5)) is None
    assert guard.problem(float("inf")) == "gradient norm"
    guard.see_micro_batch([9], torch.tensor(float("nan")))  # gradient accumulation: a later micro-batch
    assert guard.problem(torch.tensor(1.5)) == "loss" and guard.step_rows == [4, 7, 9]
    guard.next_step()
    assert guard.problem(None) is None and guard.step_rows == [] and guard.previous_rows == [4, 7, 9]


def test_stop_message_names_step_rows_and_last_good_checkpoint():
    err = NonFiniteStop(3, "loss", [12, 5], "/runs/a/checkpoints/checkpoint-2")
    assert err.exit_code == EXIT_NONFINITE == 3
    text = str(err)
    assert "non-finite loss at step 3" in text and "index=12,5" in text
    assert "last good checkpoint: /runs/a/checkpoints/checkpoint-2" in text and "on_nonfinite=skip" in text
    assert "no checkpoint saved yet" in str(NonFiniteStop(1, "loss", [], None))


def test_skip_summary_counts_the_skipped_steps(tmp_path):
    guard = NonFiniteGuard("skip")
    guard.see_micro_batch([1, 2], float("nan"))
    guard.record_skip(5, guard.problem(0.0))
    guard.write_summary(tmp_path)
    summary = json.loads((tmp_path / "nonfinite.json").read_text())
    assert summary == {"on_nonfinite": "skip", "skipped_steps": 1,
                       "skipped": [{"step": 5, "what": "loss", "rows": [1, 2]}]}


def _all_finite(directory) -> bool:
    from safetensors.torch import load_file

    return all(torch.isfinite(t).all() for f in directory.rglob("*.safetensors") for t in load_file(f).values())


@pytest.mark.slow
def test_learning_rate_1e30_stops_with_the_step_named_and_saves_nothing_non_finite(tmp_path):
    run_dir = tmp_path / "lr1e30"
    proc = run_train(run_dir, *SANDBOX, "loss=dpo", "trainer.learning_rate=1e30", "trainer.max_steps=8",
                     "trainer.save_steps=1", ok=False)
    assert proc.returncode == EXIT_NONFINITE, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: non-finite")]
    assert len(errors) == 1, proc.stderr[-3000:]
    step = int(re.search(r"at step (\d+)", errors[0]).group(1))
    assert 1 < step < 8, errors[0]
    rows = [int(r) for r in re.search(r"index=([\d,]+)", errors[0]).group(1).split(",")]
    plan = [row["index"] for row in read_jsonl(run_dir / "routing_plan.jsonl")]
    batch = 16  # conf/trainer/default.yaml per_device_batch_size: step s trains plan rows (s-1)*16 .. s*16
    assert rows == plan[(step - 1) * batch: step * batch], "the rows of the failing step's batch, in order"
    assert f"last good checkpoint: {run_dir / 'checkpoints' / f'checkpoint-{step - 1}'}" in errors[0]
    assert not (run_dir / "checkpoint").exists(), "no final checkpoint"
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert all(int(name.split("-")[1]) < step for name in saved), saved
    assert _all_finite(run_dir / "checkpoints")


@pytest.mark.slow
def test_skip_mode_skips_non_finite_batches_and_counts_them(tmp_path):
    run_dir = tmp_path / "skip"
    run_train(run_dir, *SANDBOX, "loss=dpo", "trainer.learning_rate=1e30", "trainer.max_steps=5",
              "trainer.on_nonfinite=skip")
    summary = json.loads((run_dir / "nonfinite.json").read_text())
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert summary["skipped_steps"] >= 1 and summary["skipped_steps"] == rows[-1]["nonfinite/skipped"]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert _all_finite(run_dir / "checkpoint"), "skipped batches never reached the weights"


def test_the_launcher_repeats_a_ranks_non_finite_line(tmp_path):
    """Under trainer.devices=N the ranks' stderr is captured by torchrun (--tee prefixes each
    line); the launcher finds the guard's line there and prints it instead of the rank logs."""
    from prefexp.launch.ranks import rank_error_line

    log = tmp_path / ".launch" / "none_abc" / "attempt_0" / "1" / "stderr.log"
    log.parent.mkdir(parents=True)
    log.write_text("[default1]:Traceback ...\n[default1]:error: non-finite loss at step 3 (dataset rows index=1,2)\n")
    assert rank_error_line(tmp_path, "error: non-finite") == "error: non-finite loss at step 3 (dataset rows index=1,2)"
    assert rank_error_line(tmp_path, "error: something else") is None
