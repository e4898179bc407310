"""Experiment logger: a W&B run (offline by default) holding the flattened resolved config.

The run's identity (id, project, entity) is kept in ``<run dir>/wandb_run.json``: a training run
started again in the same run dir (resume) reopens that W&B run instead of splitting its history
over a new id, and ``prefexp.evaluate`` attaches its numbers to it.
"""
from __future__ import annotations

import json
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


WANDB_RUN_FILE = "wandb_run.json"


def saved_run_id(run_dir: Path) -> str | None:
    """The W&B id this run dir used before, if any (a corrupt record counts as none)."""
    path = Path(run_dir) / WANDB_RUN_FILE
    try:
        return json.loads(path.read_text()).get("id") or None
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def start_wandb(cfg: LoggerConfig, resolved: dict, run_dir: Path, run_name: str, tags: list[str]):
    """Start the run that transformers' WandbCallback will then report into. None if disabled.
    A run dir that had a W&B run before resumes it (same id); the identity is (re)written."""
    if cfg.backend != "wandb" or cfg.mode == "disabled":
        return None
    os.environ["WANDB_MODE"] = cfg.mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_DIR"] = str(run_dir)
    import wandb

    previous = saved_run_id(run_dir)
    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group, tags=list(cfg.tags) + tags,
                     name=run_name, dir=str(run_dir), mode=cfg.mode, config=flatten(resolved),
                     id=previous, resume="allow" if previous else None)
    record = {"id": run.id, "project": cfg.project, "entity": cfg.entity, "group": cfg.group,
              "name": run_name, "mode": cfg.mode}
    tmp = Path(run_dir) / (WANDB_RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, Path(run_dir) / WANDB_RUN_FILE)
    log.info("W&B %s run %s%s in %s", cfg.mode, run.id, " (resumed)" if previous else "", run_dir / "wandb")
    return run
