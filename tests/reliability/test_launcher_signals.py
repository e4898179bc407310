"""A multi-rank run (trainer.devices=2 deepspeed=zero2, two gloo ranks on CPU): a signal to the
launcher reaches every rank, and no rank outlives the launcher even when it is SIGKILLed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.scale.conftest import TINY, TINY_DATA, TINY_MODEL

from .faults import logged_step, wait_for

DS = ["model.dtype=float32", "trainer.per_device_batch_size=2", "trainer.logging_steps=1", "deepspeed=zero2",
      "trainer.devices=2", "trainer.max_steps=16", "trainer.save_steps=100"]


def processes_of(run_dir: Path) -> list[int]:
    """Live pids whose command line names the run dir (torchrun and its ranks)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if str(run_dir) in cmdline and "Z" not in state.split()[1]:  # zombies are dead already
            pids.append(int(entry.name))
    return pids


def start_launcher(run_dir: Path, cache: Path) -> tuple[subprocess.Popen, Path]:
    log = run_dir.parent / "launcher.log"
    cmd = [sys.executable, "-m", "prefexp.train", *TINY, *DS, f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    cmd = [c for c in cmd if c != "trainer.max_steps=2"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT), log


def wait_gone(run_dir: Path, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := processes_of(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive


@pytest.fixture
def tiny_data():
    if not (TINY_MODEL / "config.json").exists() or not TINY_DATA.exists():
        pytest.skip("../shared/data (tiny-gpt2, UltraFeedback slice) is not beside the repo")


@pytest.mark.slow
def test_sigkill_of_the_launcher_leaves_no_rank_alive(tmp_path, tiny_data):
    run_dir = tmp_path / "run"
    proc, log = start_launcher(run_dir, tmp_path / "cache")
    wait_for(lambda: logged_step(run_dir) >= 1, proc, log)
    assert len(processes_of(run_dir)) >= 3, "torchrun and two ranks are running"
    proc.kill()
    proc.wait()
    alive = wait_gone(run_dir)
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"outlived the launcher: {alive}"


@pytest.mark.slow
def test_sigterm_to_the_launcher_reaches_every_rank_and_saves(tmp_path, tiny_data):
    run_dir = tmp_path / "run"
    proc, log = start_launcher(run_dir, tmp_path / "cache")
    wait_for(lambda: logged_step(run_dir) >= 1, proc, log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 143, log.read_text()[-3000:]
    assert not wait_gone(run_dir, timeout=30)
    stopped = [line for line in log.read_text().splitlines() if line.startswith("stopped: SIGTERM")]
    assert len(stopped) == 1, log.read_text()[-3000:]
    checkpoint = Path(stopped[0].split("checkpoint saved in ")[1].split(";")[0])
    assert checkpoint.parent == run_dir / "checkpoints" and (checkpoint / "trainer_state.json").exists()
    shards = sorted(p.name for p in checkpoint.glob("global_step*/*optim_states.pt"))
    assert len(shards) == 2, f"both ranks wrote their ZeRO-2 optimizer shard: {shards}"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_launcher_sigkilled_mid_save_then_resume_gives_the_uninterrupted_weights(tmp_path, tiny_data, stage):
    """ZeRO: every rank writes its shards into .saving/checkpoint-4, the launcher is SIGKILLed there;
    the rerun sets that save aside, resumes from checkpoint-2 and ends bit-identical."""
    import torch
    from safetensors.torch import load_file

    keep = [a for a in [*TINY, *DS] if not a.startswith(("trainer.max_steps=", "trainer.save_steps=", "deepspeed="))]
    args = [*keep, f"deepspeed={stage}", "trainer.max_steps=6", "trainer.save_steps=2",
            f"paths.cache_dir={tmp_path / 'cache'}"]

    def launch(run_dir: Path, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        log = run_dir.parent / f"{run_dir.name}.{len(list(run_dir.parent.glob(run_dir.name + '.*.log')))}.log"
        cmd = [sys.executable, "-m", "prefexp.train", *args, f"hydra.run.dir={run_dir}"]
        return subprocess.Popen(cmd, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}), log

    baseline = tmp_path / "uninterrupted"
    proc, log = launch(baseline)
    assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]

    run_dir = tmp_path / "killed"
    proc, log = launch(run_dir, {"PREFEXP_TEST_PAUSE_IN_SAVE": "4:600"})
    wait_for(lambda: "paused in the save of checkpoint-4" in log.read_text(), proc, log)
    proc.kill()
    proc.wait()
    assert not wait_gone(run_dir), "no rank outlives the SIGKILLed launcher"
    assert (run_dir / "checkpoints" / ".saving" / "checkpoint-4").is_dir()
    proc, log = launch(run_dir)
    assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    assert "set aside incomplete checkpoint" in log.read_text()
    assert f"resuming from {run_dir / 'checkpoints' / 'checkpoint-2'}" in log.read_text()
    want = load_file(baseline / "checkpoint" / "model.safetensors")
    got = load_file(run_dir / "checkpoint" / "model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
