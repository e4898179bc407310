"""Run-dir preflight: writable, and room for two checkpoints, checked before any model loads.

A run on a nearly full filesystem used to train for minutes and crash at its second save, leaving a
partial checkpoint behind. Here the run dir is created and written to once, and its free space is
compared with an estimate of two Trainer checkpoints (``save_total_limit`` keeps two by default):

    checkpoint bytes ~= 3 x weight bytes
                        (the weights as saved, plus AdamW's exp_avg and exp_avg_sq, each the
                         size of the weights; scheduler, RNG and trainer state are a few kB)

Weight bytes come from the model folder's ``*.safetensors`` (else ``*.bin``) files; for the
sandbox model, which may not be built yet, from its spec; for a hub id not on disk the size is
unknown and only writability is checked.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

from ..errors import InputError
from ..config.schema import SandboxModelSpec, TrainConfig

log = logging.getLogger(__name__)

CHECKPOINTS = 2
STATE_FACTOR = 3  # weights + AdamW's two moment tensors
SANDBOX_VOCAB_BOUND = 256  # the character-level sandbox vocabulary is ~100 tokens; a safe upper bound


class RunDirError(InputError):
    """The run dir cannot be written or is too small for the checkpoints."""


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def weight_bytes(model_path: Union[str, Path]) -> Optional[int]:
    """Bytes of a local model folder's weight files; None when it is not a local folder."""
    path = Path(model_path).expanduser()
    if not path.is_dir():
        return None
    files = list(path.glob("*.safetensors")) or list(path.glob("pytorch_model*.bin"))
    return sum(f.stat().st_size for f in files) if files else None


def sandbox_weight_bytes(spec: SandboxModelSpec) -> int:
    """fp32 bytes of the sandbox Llama: embeddings (tied) + per layer attention, MLP and norms."""
    h, i = spec.hidden_size, spec.intermediate_size
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    return 4 * (SANDBOX_VOCAB_BOUND * h + spec.num_layers * per_layer + h)


def checkpoint_bytes(weights: int) -> int:
    return STATE_FACTOR * weights


def check_run_dir(run_dir: Union[str, Path], model_path_or_size: Union[str, Path, int, None],
                  free_bytes: Optional[int] = None, key: str = "hydra.run.dir") -> None:
    """Raise :class:`RunDirError` unless ``run_dir`` is writable and holds ``CHECKPOINTS`` checkpoints.

    ``model_path_or_size``: a model folder (its weight files are measured), the weight size in bytes,
    or None / a hub id (size unknown: writability only). ``free_bytes`` replaces the filesystem's
    free space (tests inject it; a tiny filesystem is not available to them).
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".prefexp-write-test-"):
            pass
    except OSError as exc:
        raise RunDirError(f"{key}={str(run_dir)!r} is not writable ({exc.strerror or exc}); "
                          f"pick a writable directory, e.g. {key}=outputs/runs/mine") from None
    weights = model_path_or_size if isinstance(model_path_or_size, int) else (
        weight_bytes(model_path_or_size) if model_path_or_size is not None else None)
    if weights is None:
        log.info("run dir %s is writable; model size unknown here, free space not checked", run_dir)
        return
    free = shutil.disk_usage(run_dir).free if free_bytes is None else free_bytes
    need = CHECKPOINTS * checkpoint_bytes(weights)
    if free < need:
        raise RunDirError(
            f"{key}={str(run_dir)!r} has {_gib(free)} free, but {CHECKPOINTS} checkpoints need about {_gib(need)} "
            f"(each ~{STATE_FACTOR} x the {_gib(weights)} of weights: weights + AdamW state); free space there "
            f"or pick a run dir on a larger filesystem")


def preflight_run_dir(c: TrainConfig, run_dir: Union[str, Path], free_bytes: Optional[int] = None) -> None:
    """:func:`check_run_dir` for a validated config: the sandbox's size from its spec, a dry run
    (which saves no checkpoint) checked for writability only."""
    if c.dry_run:
        size = None
    elif c.model.name_or_path == "sandbox":
        size = sandbox_weight_bytes(c.model.sandbox)
    else:
        size = c.model.name_or_path
    check_run_dir(run_dir, size, free_bytes=free_bytes)


__all__ = ["RunDirError", "check_run_dir", "checkpoint_bytes", "preflight_run_dir", "sandbox_weight_bytes",
           "weight_bytes"]
