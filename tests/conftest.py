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


# `make test-unit` (PREFEXP_UNIT_TESTS=1, -m "not spawns"): the tests of modules that start no
# process. A module is "spawns" when its text names a way to start one; the guard below makes a
# unit test that starts one anyway fail, so the text rule cannot silently let one through.
SPAWNS = ("subprocess", "sys.executable", "Popen", "multiprocessing", "run_train(", "train_cmd(", "faults.start",
          "start(run_dir",
          "runner import evaluate",  # the evaluation runner records the git commit (git rev-parse)
          "start_wandb", "wandb.init")  # W&B runs its service as a process


def pytest_collection_modifyitems(config, items):
    texts: dict[str, str] = {}
    for item in items:
        path = str(item.path)
        if path not in texts:
            texts[path] = Path(path).read_text(errors="replace")
        if any(word in texts[path] for word in SPAWNS):
            item.add_marker(pytest.mark.spawns)


@pytest.fixture(autouse=True)
def _no_process_in_unit_tests(monkeypatch):
    if os.environ.get("PREFEXP_UNIT_TESTS") != "1":
        return
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError("a unit test started a process: add the word that starts it to tests/conftest.py SPAWNS")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


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
