"""SIGTERM (a SLURM preemption) and SIGINT: the current step finishes, its checkpoint is saved, one
line says where and how to resume, exit 128 + signal; the printed command resumes from it. A
second launch into a run dir held by a live run is refused with the holder's pid."""
from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys

import pytest

from tests.helpers import REPO, read_jsonl

from .faults import finish, logged_step, start, wait_for

STEPS = 20  # the sandbox's 400 prompts give 25 batches: the signal lands well before the end
RUN = ["loss=dpo", f"trainer.max_steps={STEPS}", "trainer.save_steps=100"]  # no periodic save before step 100


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_current_step_and_the_printed_command_resumes(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc, log = start(run_dir, *RUN)
    wait_for(lambda: logged_step(run_dir) >= 1, proc, log)
    proc.send_signal(sig)
    assert finish(proc, log) == 128 + sig
    lines = [line for line in log.read_text().splitlines() if line.startswith("stopped:")]
    assert len(lines) == 1, log.read_text()[-3000:]
    step = int(re.search(r"at step (\d+)", lines[0]).group(1))
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{step}"
    assert f"checkpoint saved in {checkpoint};" in lines[0] and 1 <= step < STEPS
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step
    assert not (run_dir / "checkpoint").exists(), "a preempted run writes no final checkpoint"
    assert not (run_dir / ".run.lock").exists(), "the lock goes with the run"

    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {checkpoint}" in resumed.stdout + resumed.stderr  # Hydra logs to stdout
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"] == STEPS


@pytest.mark.slow
def test_a_live_run_holds_its_run_dir_and_a_dead_ones_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    # the first run sits inside its first save (test hook), holding the run dir
    proc, log = start(run_dir, "loss=dpo", "trainer.max_steps=3", "trainer.save_steps=1",
                      env={"PREFEXP_TEST_PAUSE_IN_SAVE": "1:600"})
    wait_for(lambda: "paused in the save" in log.read_text(), proc, log)
    second = subprocess.run([sys.executable, "-m", "prefexp.train", f"hydra.run.dir={run_dir}", "loss=dpo",
                             "dry_run=true"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"pid {proc.pid} on host {socket.gethostname()}" in errors[0], second.stderr[-2000:]
    proc.kill()
    proc.wait()
    # killed with SIGKILL: its lock stays behind, stale; the next launch takes it over
    assert json.loads((run_dir / ".run.lock").read_text())["pid"] == proc.pid
    third = subprocess.run([sys.executable, "-m", "prefexp.train", f"hydra.run.dir={run_dir}", "loss=dpo",
                            "dry_run=true"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"took over the stale lock of pid {proc.pid}" in third.stdout + third.stderr
    assert not (run_dir / ".run.lock").exists()
