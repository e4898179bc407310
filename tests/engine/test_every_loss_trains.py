"""Every file in conf/loss/ trains on the sandbox: one Hydra multirun over all of them, 3 steps each.

Where the first step has a closed form (policy = reference at step 1, so every log-ratio is 0), the
logged loss is checked against it; every run must leave a loadable checkpoint.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOSSES = sorted(p.stem for p in (REPO / "conf" / "loss").glob("*.yaml"))

# First logged loss at h = 0 (policy == reference), from the formulas of methods.md.
FIRST_LOSS = {
    "dpo": math.log(2),
    "cdpo": math.log(2),  # (1-eps) sp(0) + eps sp(0)
    "robust": math.log(2),  # ((1-eps) sp(0) - eps sp(0)) / (1 - 2 eps)
    "hinge": 1.0,  # relu(1 - beta * 0)
    "ipo": (1 / (2 * 0.1)) ** 2,  # (0 - 1/(2 beta))^2, beta = 0.1
    "apo_zero": 1.0,  # (1 - sigma(0)) + sigma(0)
}


def test_every_loss_trains_three_steps(tmp_path):
    assert len(LOSSES) == 23, LOSSES
    sweep = tmp_path / "losses"
    cmd = [sys.executable, "-m", "prefexp.train", "-m", f"loss={','.join(LOSSES)}", "trainer.max_steps=3",
           "trainer.logging_steps=1", "logger=none", "dataset.sandbox.num_prompts=400",
           "model.sandbox.sft_steps=80", "model.sandbox.num_prompts=400", "evaluate=[]", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    failed = [(r["loss"], r["error"]) for r in summary["runs"] if r["status"] != "ok"]
    assert not failed, failed
    assert sorted(r["loss"] for r in summary["runs"]) == LOSSES
    for job in summary["runs"]:
        run_dir = sweep / job["dir"]
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        train_rows = [m for m in metrics if "loss" in m]
        assert [m["step"] for m in train_rows] == [1, 2, 3], job["loss"]
        assert all(math.isfinite(m["loss"]) for m in train_rows), job["loss"]
        manifest = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())
        assert manifest["loss"] == job["loss"] and manifest["step"] == 3
        if job["loss"] in FIRST_LOSS:
            assert abs(train_rows[0]["loss"] - FIRST_LOSS[job["loss"]]) < 1e-4, (job["loss"], train_rows[0]["loss"])
