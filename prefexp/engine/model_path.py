"""Where a run's model weights are: a local folder or hub id as given, or the built-in sandbox
model, built into the cache on first use."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path


def resolve_model_path(c) -> str:
    """``c`` is any settings object with ``.model`` (ModelConfig) and ``.paths`` (PathsConfig)."""
    if c.model.name_or_path != "sandbox":
        return c.model.name_or_path
    from ..sandbox.model import ensure_sandbox_model

    return str(ensure_sandbox_model(Path(c.paths.cache_dir), **asdict(c.model.sandbox)))
