"""A checkpoint write that fails (full disk, quota, file-size limit) ends the run in one `error:` line
with exit 4, saying how much room is left and where the same command resumes; the rerun sets the
partial save aside.

The failure is real: the run's file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so that a write past
it fails with EFBIG like a full disk fails with ENOSPC) lets the 138k-parameter model's weights
(~0.55 MB) through and stops the optimizer state (~1.1 MB), which torch.save writes.
"""
from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys

import pytest

from tests.helpers import REPO, run_train

from .faults import SANDBOX

LIMIT_BYTES = 800_000


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


@pytest.mark.slow
def test_a_failed_checkpoint_write_is_one_error_line_and_the_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    run = ["loss=dpo", "trainer.max_steps=3", "trainer.save_steps=2", *SANDBOX]
    run_train(tmp_path / "warm", *run, "dry_run=true")  # builds the cached sandbox model without the limit
    proc = subprocess.run([sys.executable, "-m", "prefexp.train", f"hydra.run.dir={run_dir}", *run], cwd=REPO,
                          capture_output=True, text=True, timeout=900, preexec_fn=_limit_file_size)
    assert proc.returncode == 4, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    staged = run_dir / "checkpoints" / ".saving" / "checkpoint-2"
    assert errors[0].startswith(f"error: could not write {staged} at step 2: ")
    assert "MB free on its filesystem" in errors[0] and "starts over (no complete checkpoint yet)" in errors[0]
    assert not (run_dir / "checkpoints" / "checkpoint-2").exists() and not (run_dir / "checkpoint").exists()

    rerun = run_train(run_dir, *run)
    assert (run_dir / "checkpoints" / "incomplete-checkpoint-2").is_dir()  # set aside, named in the log
    assert "incomplete-checkpoint-2" in rerun.stdout + rerun.stderr
    assert json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"] == 3


@pytest.mark.slow
def test_a_failed_write_in_a_multi_rank_run_is_one_line_from_the_launcher(tmp_path):
    """trainer.devices=2 deepspeed=zero2 on the tiny GPT-2: the limit lets the ZeRO shards
    (~0.42 MB model states, ~0.62 MB optimizer state per rank) through and stops rank 0's
    model.safetensors (~0.82 MB). The launcher repeats that rank's line once and exits 4."""
    from tests.scale.conftest import TINY, TINY_DATA, TINY_MODEL

    if not (TINY_MODEL / "config.json").exists() or not TINY_DATA.exists():
        pytest.skip("../shared/data (tiny-gpt2, UltraFeedback slice) is not beside the repo")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "prefexp.train", *TINY, "model.dtype=float32", "trainer.per_device_batch_size=2",
           "trainer.logging_steps=1", "deepspeed=zero2", "trainer.devices=2", "trainer.save_steps=1",
           f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, preexec_fn=_limit_file_size)
    assert proc.returncode == 4, (proc.returncode, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: could not write "), proc.stderr[-3000:]
    assert "at step 1: " in errors[0] and "starts over (no complete checkpoint yet)" in errors[0]
