"""W&B start-up for a training run: mode (online only with a key), group (the sweep), a short
name (``mixdpo-tau0.5-s1``), the composed config and tags of what the run uses; its orderly end.

``loss``, ``seed``, and ``router``, ``curriculum``, ``tau`` only where the run uses them
(``config.axes``), are both tags (``loss:mixdpo``, ``seed:1``, ``tau:0.5``) and config; a DPO
run carries no ``tau`` and no router it ignores."""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..config.naming import run_name, sweep_group
from ..config.axes import router_is_used, tau_is_used

log = logging.getLogger(__name__)


def start_tracking(settings, resolved: dict, run_dir: Path, overrides: Sequence[str], sweep_dir: str | None):
    """The W&B run of this training job, or None (logger off, dry run, or not rank 0)."""
    from ..engine.distributed import is_main_process
    from .run import start_wandb

    c = settings.config
    if c.logger.backend != "wandb" or c.logger.mode == "disabled" or c.dry_run or not is_main_process():
        return None
    group = tracking_group(c, sweep_dir)
    logger_cfg = replace(c.logger, mode=wandb_mode(c.logger.mode), group=group)
    os.environ["WANDB_JOB_TYPE"] = c.logger.job_type
    used = used_headline(resolved, settings.loss_name)
    tags = [f"{key}:{value}" for key, value in used.items()]
    name = c.logger.name or run_name(resolved, _choices(settings.loss_name), overrides)
    return start_wandb(logger_cfg, wandb_config(resolved, used), run_dir, name, tags)


def _choices(loss_name: str) -> dict:
    """Hydra's config group choices of this job (just the loss outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return dict(HydraConfig.get().runtime.choices)
    return {"loss": loss_name}


def used_headline(resolved: dict, loss_name: str) -> dict:
    """{loss, seed[, router][, curriculum][, tau]}: what a dashboard filters on, only where used."""
    out = {"loss": loss_name, "seed": resolved.get("seed")}
    if router_is_used(resolved):
        out["router"] = resolved["router"].get("name")
    curriculum = (resolved.get("curriculum") or {}).get("order", "none")
    if curriculum != "none":
        out["curriculum"] = curriculum
    if tau_is_used(resolved) and resolved.get("tau") is not None:
        out["tau"] = resolved["tau"]
    return out


def wandb_config(resolved: dict, used: dict) -> dict:
    """The composed config as it is nested, the loss named (``loss.name``), and the router,
    curriculum and tau left out where the run does not use them."""
    config = {k: v for k, v in resolved.items() if k not in ("router", "curriculum", "tau") or k in used}
    config["loss"] = {"name": used["loss"], **(resolved.get("loss") or {})}
    return config


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
