"""Run names: W&B group = the sweep, name = the job's own overrides."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence


def run_name(overrides: Sequence[str]) -> str:
    """``loss=mixdpo,tau=0.25``: the job's own overrides; paths shortened to their last part."""
    parts = []
    for o in overrides:
        if o.startswith(("hydra.", "trainer.devices=")) or "=" not in o:
            continue
        key, value = o.split("=", 1)
        if "/" in value:
            value = Path(value.rstrip("/")).name
        parts.append(f"{key.lstrip('+~')}={value}")
    return ",".join(parts) or "default"


def sweep_group(sweep_dir: str | Path) -> str:
    """One W&B group per sweep: the sweep dir's name (with its date when the name is a time)."""
    path = Path(sweep_dir)
    if re.fullmatch(r"\d{2}-\d{2}-\d{2}", path.name):
        return f"{path.parent.name}_{path.name}"
    return path.name
