"""The checkpoint as the evaluation stage sees it: a directory with ``manifest.json``.

Training writes the manifest; evaluation reads only it (never the training config), so a
checkpoint can be evaluated anywhere it is copied to. ``checkpoint=`` may name the checkpoint
directory itself or a run directory holding ``checkpoint/``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import layout
from .config import EvalConfigError

REQUIRED_KEYS = ("base_model", "step", "model_dir")


@dataclass(frozen=True)
class Checkpoint:
    path: Path                 # the directory holding manifest.json
    manifest: dict
    output_root: Path          # <run dir> if given a run dir, else the checkpoint dir
    run_dir: Optional[Path]    # the training run dir (for its W&B run), if it exists here
    kind = "checkpoint"        # which entry of prefexp.evaluate (sources.py); not a field

    @property
    def model_dir(self) -> Path:
        return (self.path / self.manifest.get("model_dir", ".")).resolve()

    @property
    def chat_template(self) -> Optional[str]:
        return self.manifest.get("chat_template")

    @property
    def step(self) -> int:
        return int(self.manifest.get("step", 0))

    def default_model_name(self) -> str:
        """A readable, file-name-safe identity: ``<run dir name>-step<step>``."""
        base = (self.run_dir or self.path).name
        return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{base}-step{self.step}")

    def resolve_model(self, name_or_path: str) -> str:
        """A manifest model entry as a local path if one exists (absolute, or relative to the
        checkpoint or run dir), else unchanged (a hub name)."""
        candidate = Path(name_or_path).expanduser()
        if candidate.is_absolute():
            return str(candidate) if candidate.exists() else name_or_path
        for root in (self.path, self.run_dir, Path.cwd()):
            if root is not None and (root / candidate).exists():
                return str((root / candidate).resolve())
        return name_or_path

    def describe(self) -> dict:
        """What results.json records about the evaluated model."""
        keys = ("base_model", "loss", "config_hash", "git_commit", "step", "reference_model")
        return {"kind": "checkpoint", "path": str(self.path), **{k: self.manifest.get(k) for k in keys}}


def resolve_checkpoint(path: str) -> Checkpoint:
    """Find ``manifest.json`` in ``path`` or ``path/checkpoint``; fail naming the key otherwise."""
    given = Path(path).expanduser().resolve()
    if (given / layout.MANIFEST).is_file():
        ckpt_dir, output_root = given, given
    elif (given / layout.FINAL_CHECKPOINT / layout.MANIFEST).is_file():
        ckpt_dir, output_root = given / layout.FINAL_CHECKPOINT, given
    else:
        raise EvalConfigError(
            f"checkpoint={path!r}: no manifest.json in {given} nor in {given / layout.FINAL_CHECKPOINT}; "
            "pass a training run dir or a checkpoint dir written by prefexp.train")
    try:
        manifest = json.loads((ckpt_dir / layout.MANIFEST).read_text())
    except json.JSONDecodeError as err:
        raise EvalConfigError(f"checkpoint={path!r}: {ckpt_dir / layout.MANIFEST} is not JSON ({err})")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise EvalConfigError(f"checkpoint={path!r}: manifest.json lacks keys {missing}")
    run_dir = manifest.get("run_dir")
    run_path = Path(run_dir) if run_dir and Path(run_dir).is_dir() else None
    if run_path is None and output_root != ckpt_dir:
        run_path = output_root  # the run dir was moved: the one we were given is it
    return Checkpoint(path=ckpt_dir, manifest=manifest, output_root=output_root, run_dir=run_path)
