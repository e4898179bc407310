"""Entry point: ``python -m prefexp.train [overrides]``.

Composes ``conf/train.yaml``, validates it once (before any model loads), then hands typed
settings to the pipeline. Only this module and ``prefexp.config`` touch the DictConfig.
"""
from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import CONFIG_DIR
from .config.validate import ConfigError, validate
from .data.records import InvalidRowError

log = logging.getLogger("prefexp.train")


def _strip_launcher_args(argv: list[str]) -> list[str]:
    """The `deepspeed` launcher appends --local_rank=N; it must never reach Hydra's parser."""
    kept = []
    skip_next = False
    for i, arg in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if arg.startswith("--local_rank") or arg.startswith("--local-rank"):
            if "=" in arg:
                os.environ.setdefault("LOCAL_RANK", arg.split("=", 1)[1])
            elif i + 1 < len(argv):
                os.environ.setdefault("LOCAL_RANK", argv[i + 1])
                skip_next = True
            continue
        kept.append(arg)
    return kept


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from pathlib import Path

    try:
        settings = validate(cfg)
    except ConfigError as exc:
        if _is_multirun():
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_dir = Path(settings.config.paths.run_dir)

    from hydra.core.hydra_config import HydraConfig

    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    c = settings.config
    run_name = ",".join(o for o in overrides if not o.startswith("hydra.")) or "default"
    tags = [f"loss:{settings.loss_name}", f"tau:{c.tau}", f"router:{c.router.name}", f"curriculum:{c.curriculum.order}"]
    from .engine.run import train
    from .logger import start_wandb

    wandb_run = None
    try:
        if not c.dry_run and int(os.environ.get("RANK", "0")) == 0:
            wandb_run = start_wandb(c.logger, resolved, run_dir, run_name, tags)
        train(settings, resolved, run_dir)
    except (InvalidRowError, FileNotFoundError) as exc:
        if _is_multirun():
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if wandb_run is not None:
            wandb_run.finish()


if __name__ == "__main__":
    sys.argv = _strip_launcher_args(sys.argv)
    main()
