"""Config: Hydra schemas and resolvers, the run naming they use, and the validated ``Settings`` type
(the bottom layer: imports nothing else of prefexp; validation itself is ``prefexp.setup``)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from .schema import register_schemas

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"



def short_dirname(text: str, limit: int = 120) -> str:
    """A sweep job's dir name from its overrides, kept under file-name limits (255 bytes): past
    ``limit`` characters it is cut and a hash of the whole text is appended, so names stay unique."""
    import hashlib

    text = str(text).replace("/", "_")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def job_name(*, _root_) -> str:
    """``${prefexp_job_name:}``: a sweep job's dir name (``prefexp.config.naming``; imported on use)."""
    from .naming import job_dir_name

    return job_dir_name(_root_=_root_)


if not OmegaConf.has_resolver("prefexp_job_name"):
    OmegaConf.register_new_resolver("prefexp_job_name", job_name)
if not OmegaConf.has_resolver("prefexp_root"):
    OmegaConf.register_new_resolver("prefexp_root", lambda: str(PROJECT_ROOT))
if not OmegaConf.has_resolver("prefexp_short"):
    OmegaConf.register_new_resolver("prefexp_short", short_dirname)
register_schemas()

__all__ = ["PROJECT_ROOT", "CONFIG_DIR"]
