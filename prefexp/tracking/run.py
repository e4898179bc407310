"""Experiment logger: a W&B run (offline by default) holding prefexp's composed config.

The config is the resolved Hydra config as it is nested (``loss.beta``, ``trainer.learning_rate``;
the Trainer's own arguments are added under ``trainer_args`` by ``engine.wandb_callback``), plus
``loss.name``; ``router``, ``curriculum`` and ``tau`` only where the run uses them (the caller,
``tracking.wandb_config``, decides).

The run's identity (id, project, entity) is kept in ``<run dir>/wandb_run.json``: a training run
started again in the same run dir (resume) reopens that W&B run instead of splitting its history
over a new id, and ``prefexp.evaluate`` attaches its numbers to it.

Steps: every history row is logged at an explicit step, ``_step`` = the Trainer's global step
(``log_at_step``). Offline, a resumed W&B run starts counting at 0 again, so a resumed start
first reads the run's earlier files (``tracking.files``) and drops the rows of steps already there
(the steps redone after the last checkpoint): ``_step`` stays strictly increasing over the run.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..config import layout
from ..config.schema import LoggerConfig

log = logging.getLogger(__name__)


WANDB_RUN_FILE = layout.WANDB_RUN


def saved_run_id(run_dir: Path) -> str | None:
    """The W&B id this run dir used before, if any (a corrupt record counts as none)."""
    path = Path(run_dir) / WANDB_RUN_FILE
    try:
        return json.loads(path.read_text()).get("id") or None
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


_last_logged_step = {"step": -1}  # the highest _step already in this run's files (resume)


def last_logged_step() -> int:
    """The highest ``_step`` of this run in its files from before this start (-1: none)."""
    return _last_logged_step["step"]


def log_at_step(values: dict, step: int) -> bool:
    """Add ``values`` to the W&B history row of ``step`` (rows merge until a later step is
    logged); False when no run is open or the step is already on disk from before a resume."""
    import sys

    wandb = sys.modules.get("wandb")  # only when the run already imported it (logger=wandb)
    if wandb is None or getattr(wandb, "run", None) is None or step <= _last_logged_step["step"]:
        return False
    wandb.run.log(values, step=step)
    return True


def start_wandb(cfg: LoggerConfig, resolved: dict, run_dir: Path, run_name: str, tags: list[str]):
    """Start the run that prefexp's WandbCallback will then report into. None if disabled.
    A run dir that had a W&B run before resumes it (same id, its step continued); the identity is
    (re)written."""
    if cfg.backend != "wandb" or cfg.mode == "disabled":
        return None
    os.environ["WANDB_MODE"] = cfg.mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_DIR"] = str(run_dir)
    import wandb

    from .files import last_steps, segments

    previous = saved_run_id(run_dir)
    _last_logged_step["step"] = last_steps(segments(run_dir, previous))[0] if previous else -1
    run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group, tags=list(cfg.tags) + tags,
                     name=run_name, dir=str(run_dir), mode=cfg.mode, config=resolved,
                     id=previous, resume="allow" if previous else None)
    record = {"id": run.id, "project": cfg.project, "entity": cfg.entity, "group": cfg.group,
              "name": run_name, "tags": list(cfg.tags) + tags, "mode": cfg.mode}
    tmp = Path(run_dir) / (WANDB_RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, Path(run_dir) / WANDB_RUN_FILE)
    log.info("W&B %s run %s%s in %s", cfg.mode, run.id, " (resumed)" if previous else "", run_dir / layout.WANDB)
    return run
