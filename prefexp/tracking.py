"""W&B start-up for a training run: mode (online only with a key), group (the sweep), name (the
job's overrides), tags from the config; and its orderly end."""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .launch.naming import run_name, sweep_group

log = logging.getLogger(__name__)


def start_tracking(settings, resolved: dict, run_dir: Path, overrides: Sequence[str], sweep_dir: str | None):
    """The W&B run of this training job, or None (logger off, dry run, or not rank 0)."""
    from .engine.distributed import is_main_process
    from .logger import start_wandb

    c = settings.config
    if c.logger.backend != "wandb" or c.logger.mode == "disabled" or c.dry_run or not is_main_process():
        return None
    group = tracking_group(c, sweep_dir)
    logger_cfg = replace(c.logger, mode=wandb_mode(c.logger.mode), group=group)
    os.environ["WANDB_JOB_TYPE"] = c.logger.job_type
    tags = [f"loss:{settings.loss_name}", f"tau:{c.tau}", f"router:{c.router.name}", f"curriculum:{c.curriculum.order}"]
    return start_wandb(logger_cfg, resolved, run_dir, c.logger.name or run_name(overrides), tags)


def tracking_group(c, sweep_dir: str | None) -> str | None:
    """logger.group, else the sweep's name for every job of a multirun."""
    if c.logger.group is None and sweep_dir is not None:
        return sweep_group(sweep_dir)
    return c.logger.group


def finish_tracking(run) -> None:
    if run is None:
        return
    run.finish()
    import wandb

    wandb.teardown()  # wandb 0.31 offline can lose the run if the process exits right after finish()


def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """online only when asked *and* a key exists; otherwise offline, with a warning."""
    if requested == "online" and not has_wandb_key():
        log.warning("logger.mode=online but no W&B key (WANDB_API_KEY or ~/.netrc); logging offline instead "
                    "(upload later with `wandb sync <run dir>/wandb/offline-run-*`)")
        return "offline"
    return requested
