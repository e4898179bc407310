"""Entry point: ``python -m prefexp.reward model=<option> dataset=<option> [overrides]``.

Composes ``conf/reward.yaml``, validates it before any model loads, trains (or reuses) the
Bradley-Terry reward model and caches its scores. See docs/reward_and_cleaning.md.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ..config import CONFIG_DIR
from ..config.settings import ConfigError
from ..data.records import InvalidRowError
from ..errors import print_error
from ..redact import install_log_redaction
from .validate import validate_reward

log = logging.getLogger("prefexp.reward")


@hydra.main(config_path=str(CONFIG_DIR), config_name="reward", version_base="1.3")
def main(cfg: DictConfig) -> None:
    install_log_redaction()  # no log line carries an API key (prefexp/redact.py)
    try:
        c = validate_reward(cfg)
    except ConfigError as exc:
        print_error(exc)
        sys.exit(2)
    from .stage import run_reward_stage

    try:
        path = run_reward_stage(c, Path(c.paths.run_dir))
    except (InvalidRowError, FileNotFoundError) as exc:
        print_error(exc)
        sys.exit(2)
    print(f"reward scores: {path}", file=sys.stderr)


if __name__ == "__main__":
    from ..config.group_options import unknown_group_option

    problem = unknown_group_option(sys.argv[1:], CONFIG_DIR)  # dataset=ultrafeedbak: one line, exit 2
    if problem:
        print_error(problem)
        sys.exit(2)
    main()
