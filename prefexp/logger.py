"""Experiment logger: a W&B run (offline by default) holding the flattened resolved config."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .config.schema import LoggerConfig

log = logging.getLogger(__name__)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"trainer": {"lr": 1}} -> {"trainer.lr": 1}; lists are kept as values."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return flat


def start_wandb(cfg: LoggerConfig, resolved: dict, run_dir: Path, run_name: str, tags: list[str]):
    """Start the run that transformers' WandbCallback will then report into. None if disabled."""
    if cfg.backend != "wandb" or cfg.mode == "disabled":
        return None
    os.environ["WANDB_MODE"] = cfg.mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_DIR"] = str(run_dir)
    import wandb

    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group, tags=list(cfg.tags) + tags,
                     name=run_name, dir=str(run_dir), mode=cfg.mode, config=flatten(resolved))
    log.info("W&B %s run %s in %s", cfg.mode, run.id, run_dir / "wandb")
    return run
