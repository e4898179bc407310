"""Config: Hydra schemas, resolvers and the one-time validation at the entry point."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from .schema import register_schemas

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"

if not OmegaConf.has_resolver("prefexp_root"):
    OmegaConf.register_new_resolver("prefexp_root", lambda: str(PROJECT_ROOT))
register_schemas()

__all__ = ["PROJECT_ROOT", "CONFIG_DIR"]
