"""Shared fixtures: the composed config, the shared data folder, a tiny model on disk."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Tests never touch the network or the user's W&B account.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """Compose the real config tree (what `python -m prefexp.train` sees), without running."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import prefexp.config  # noqa: F401  registers schemas and resolvers
    from prefexp.config import CONFIG_DIR

    overrides = list(overrides or [])
    if config_name == "train" and not any(o.startswith("paths.run_dir=") for o in overrides):
        overrides.append("paths.run_dir=/tmp/prefexp-compose")  # hydra:runtime.* is unset under compose
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)


@pytest.fixture
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not beside the repo")
    return path
