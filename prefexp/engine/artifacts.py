"""What a run leaves behind: metrics.jsonl, the final checkpoint and its manifest."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from transformers import TrainerCallback

from ..config import PROJECT_ROOT
from ..config import layout


class MetricsFileCallback(TrainerCallback):
    """Appends every training log (step, loss, rewards/*, logps/*, route/*) to metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs):
        # On resume, drop lines logged after the checkpoint we resume from: they are logged again.
        if state.is_world_process_zero and state.global_step > 0 and self.path.exists():
            lines = [line for line in self.path.read_text().splitlines()
                     if line.strip() and json.loads(line).get("step", 0) <= state.global_step]
            self.path.write_text("".join(line + "\n" for line in lines))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


# A stateful loss's running statistics (beta-DPO, AlphaDPO), saved into every checkpoint by
# PreferenceTrainer._save_checkpoint so a resumed run continues them instead of restarting from zero.
LOSS_STATE = layout.LOSS_STATE


def load_loss_state(loss, checkpoint: str | Path) -> bool:
    """Restore ``loss``'s state from a checkpoint dir; False when the checkpoint has none."""
    import torch

    path = Path(checkpoint) / LOSS_STATE
    if not path.is_file():
        return False
    loss.load_state_dict(torch.load(path, weights_only=True))
    return True


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def write_manifest(checkpoint_dir: Path, *, base_model: str, reference_model: str, loss: str, config_hash: str,
                   step: int, chat_template: str | None, run_dir: Path) -> dict:
    manifest = {
        "base_model": base_model,
        "reference_model": reference_model,
        "loss": loss,
        "config_hash": config_hash,
        "git_commit": git_commit(),
        "step": step,
        "chat_template": chat_template,
        "model_dir": ".",
        "run_dir": str(run_dir.resolve()),
    }
    (checkpoint_dir / layout.MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest
