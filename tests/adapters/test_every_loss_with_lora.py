"""Every file in conf/loss/ trains with adapter=lora and evaluates held-out pairs: one multirun,
3 steps each (slow: ~3 min on 2 cores). At step 1 the adapter is zero (policy = reference), so
the first loss has the same closed form as in full fine-tuning (FIRST_LOSS)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.engine.test_every_loss_trains import FIRST_LOSS, LOSSES, REPO
from tests.helpers import read_jsonl

pytestmark = pytest.mark.slow


def test_every_loss_trains_with_lora(tmp_path):
    sweep = tmp_path / "losses"
    cmd = [sys.executable, "-m", "prefexp.train", "-m", f"loss={','.join(LOSSES)}", "adapter=lora",
           "trainer.max_steps=3", "trainer.logging_steps=1", "logger=none", "dataset.sandbox.num_prompts=400",
           "model.sandbox.sft_steps=80", "model.sandbox.num_prompts=400", "dataset.eval_fraction=0.05",
           "trainer.eval_steps=3", "evaluate=[]", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert [(r["loss"], r["status"]) for r in summary["runs"]] == [(name, "ok") for name in LOSSES]
    for job in summary["runs"]:
        run_dir = sweep / job["dir"]
        train_rows = [m for m in read_jsonl(run_dir / "metrics.jsonl") if "loss" in m]
        assert [m["step"] for m in train_rows] == [1, 2, 3], job["loss"]
        eval_rows = read_jsonl(run_dir / "eval_metrics.jsonl")
        assert [m["step"] for m in eval_rows] == [3] and math.isfinite(eval_rows[0]["eval_loss"]), job["loss"]
        manifest = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())
        assert manifest["adapter"]["trainable_parameters"] == 8192, job["loss"]
        if job["loss"] in FIRST_LOSS:
            assert abs(train_rows[0]["loss"] - FIRST_LOSS[job["loss"]]) < 1e-4, (job["loss"], train_rows[0]["loss"])
