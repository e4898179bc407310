"""Checkpoints a kill cannot poison: written beside, renamed into place; resume takes the newest
complete one and sets aside (renames, never deletes) any incomplete one.

A save writes ``<output>/.saving/checkpoint-N`` (every rank's shards under DeepSpeed), waits for
all ranks, then rank 0 renames it to ``<output>/checkpoint-N``. ``rename`` within one filesystem is
atomic, so a ``checkpoint-N`` either holds everything or does not exist; a kill during the save
leaves only ``.saving/checkpoint-N``. Before a resume, leftovers of ``.saving`` and any
``checkpoint-N`` without the Trainer's last-written file (``trainer_state.json``, e.g. one left by
an older version) are renamed ``incomplete-checkpoint-N`` (a name transformers' ``checkpoint-*``
rotation never matches, so it is never picked up nor deleted) and named in the log.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

STAGING = ".saving"
SET_ASIDE_PREFIX = "incomplete-"
# transformers writes trainer_state.json last in Trainer._save_checkpoint; weights are one of these.
LAST_WRITTEN = "trainer_state.json"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
           "adapter_model.safetensors", "latest")  # latest: DeepSpeed's pointer to global_stepN/
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
EXIT_WRITE_FAILED = 4


class CheckpointWriteError(Exception):
    """A checkpoint's files could not be written (full disk, quota, file-size limit, permissions)."""
    exit_code = EXIT_WRITE_FAILED


def _is_write_failure(exc: BaseException) -> bool:
    """The errors a failed write surfaces as: OSError from Python and safetensors' I/O errors;
    torch.save's zip writer reports a short write as a RuntimeError from its inline_container."""
    text = str(exc)
    return (isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError"
            or (isinstance(exc, RuntimeError) and ("inline_container" in text or "PytorchStreamWriter" in text)))


def _free_mb(path: Path) -> str:
    for parent in [path, *path.parents]:
        if parent.exists():
            return f"{shutil.disk_usage(parent).free / 2**20:.0f} MB free on its filesystem"
    return "free space unknown"


@contextmanager
def writing_checkpoint(path: str | Path, step: int, output_dir: str | Path):
    """Turn a failed write of checkpoint ``path`` into one :class:`CheckpointWriteError` that says
    what failed, the room left, and where the same command resumes from (the partial save is set
    aside then; ``output_dir`` holds the complete checkpoints)."""
    try:
        yield
    except Exception as exc:
        if not _is_write_failure(exc):
            raise
        last = newest_complete_checkpoint(output_dir)
        resume = f"resumes from {last}" if last else "starts over (no complete checkpoint yet)"
        raise CheckpointWriteError(
            f"could not write {path} at step {step}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            f"; {_free_mb(Path(path))}. Make room (or keep fewer checkpoints: trainer.save_total_limit), then rerun "
            f"the same command: it sets the partial save aside and {resume}") from exc


def staging_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / STAGING


def missing_parts(checkpoint: Path) -> list[str]:
    """What a complete checkpoint has and this one lacks (empty list: complete)."""
    missing = [] if (checkpoint / LAST_WRITTEN).is_file() else [LAST_WRITTEN]
    if not any((checkpoint / name).exists() for name in WEIGHTS):
        missing.append("model weights")
    return missing


def set_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``incomplete-<name>`` beside the checkpoints (``-2``, ``-3`` when taken)."""
    output_dir = path.parent.parent if path.parent.name == STAGING else path.parent
    target = output_dir / f"{SET_ASIDE_PREFIX}{path.name}"
    n = 2
    while target.exists():
        target = output_dir / f"{SET_ASIDE_PREFIX}{path.name}-{n}"
        n += 1
    os.replace(path, target)
    log.warning("set aside incomplete checkpoint %s as %s (%s); resume ignores it", path, target.name, reason)
    return target


def set_aside_incomplete(output_dir: str | Path) -> list[Path]:
    """Rank 0 before a resume: move away every unfinished save. Returns the new paths."""
    output_dir = Path(output_dir)
    moved = []
    staging = staging_dir(output_dir)
    if staging.is_dir():
        for leftover in sorted(staging.iterdir()):
            moved.append(set_aside(leftover, "a save that never finished"))
        staging.rmdir()
    for path in sorted(output_dir.iterdir()) if output_dir.is_dir() else []:
        if _CHECKPOINT.match(path.name) and path.is_dir():
            missing = missing_parts(path)
            if missing:
                moved.append(set_aside(path, "missing " + ", ".join(missing)))
    return moved


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Every complete ``checkpoint-N`` of ``output_dir``, oldest step first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir()
             if (m := _CHECKPOINT.match(p.name)) and p.is_dir() and not missing_parts(p)]
    return [p for _, p in sorted(found)]


def newest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def publish(staged: Path, final: Path) -> None:
    """Rename a fully written ``staged`` checkpoint to ``final`` (rank 0, after every rank wrote).

    fsync first: a rename that reaches the disk before the files' data would, after a power cut,
    be a complete-looking checkpoint of empty files. An existing ``final`` (a save of the same
    step again) is set aside first, since a rename cannot replace a non-empty directory."""
    for path in [*staged.rglob("*"), staged]:
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    if final.exists():
        set_aside(final, "replaced by a new save of the same step")
    os.replace(staged, final)
    _fsync_dir(final.parent)
    if staged.parent.name == STAGING and not any(staged.parent.iterdir()):
        staged.parent.rmdir()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PAUSE_ENV = "PREFEXP_TEST_PAUSE_IN_SAVE"


def pause_for_tests(step: int) -> None:
    """Fault-injection hook: ``PREFEXP_TEST_PAUSE_IN_SAVE=<step>:<seconds>`` sleeps inside the save
    of that step, after its files are written and before the rename, announcing it on stderr, so a
    test can SIGKILL the run mid-save deterministically. Unset (always, outside tests): no effect."""
    value = os.environ.get(PAUSE_ENV)
    if not value:
        return
    at, seconds = value.split(":")
    if int(at) == step:
        import sys
        import time

        print(f"{PAUSE_ENV}: paused in the save of checkpoint-{step}", file=sys.stderr, flush=True)
        time.sleep(float(seconds))
