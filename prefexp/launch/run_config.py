"""``<run>/run_config.json``: the config a run dir's checkpoints were trained with, and the resume
that refuses another one.

A fresh run (no complete checkpoint to resume, or ``trainer.resume=never``) records, before any data
or model loads: the resolved, validated config (secret values redacted, ``prefexp.redact``), the
config group options, the world size and the text of Hydra's ``.hydra/*.yaml`` as they were at the
start. A later launch that would resume compares its own record with it
(``prefexp.config.resume_changes`` says which keys may differ) and, on a difference, exits 2 having
changed nothing: Hydra has already rewritten ``.hydra/`` for the refused command by then, so those
files are put back from the record. A run dir from before this file existed resumes unchecked, with
a warning.

``trainer.resume=never`` over a run dir that holds a previous run starts over in a clean dir: every
file of the previous run (checkpoints, final checkpoint, metrics, plans, W&B files, its
run_config.json) is moved, not deleted, into ``<run>/previous-run-N/``. Only this launch's own
``.hydra/``, ``train.log`` (open by now) and lock stay; nothing of the two runs mixes, e.g. the new
``metrics.jsonl`` does not continue the old one and W&B starts a new run.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

from ..cachefs import write_text_atomic
from ..config import layout
from ..config.resume_changes import describe_changes, record_changes
from ..errors import InputError
from ..redact import redact

log = logging.getLogger(__name__)

RUN_CONFIG = layout.RUN_CONFIG
FORMAT = 1
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
PREVIOUS_RUN = "previous-run-"
# What belongs to this launch already when its code starts: Hydra's files and our lock.
THIS_LAUNCH = (".hydra", layout.TRAIN_LOG, layout.RUN_LOCK)


class RunConfigChanged(InputError):
    """A resume with another config than the run dir's checkpoints were trained with."""


def _redacted(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _redacted(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_redacted(v) for v in tree]
    return redact(tree) if isinstance(tree, str) else tree


def run_record(resolved: dict, choices: dict, world_size: int, hydra_dir: Optional[Path]) -> dict:
    """What run_config.json holds for this launch (JSON-plain: compared with a file read back)."""
    files = {}
    for name in HYDRA_FILES if hydra_dir is not None else ():
        if (hydra_dir / name).is_file():
            files[name] = (hydra_dir / name).read_text()
    record = {"format": FORMAT, "world_size": world_size,
              "choices": {g: o for g, o in choices.items() if g != "hydra" and not g.startswith("hydra/")},
              "config": resolved, "hydra_files": files}
    return json.loads(json.dumps(_redacted(record), default=str))


def job_world_size(nproc: int, nodes: int = 1) -> int:
    """Ranks of the whole job: the launcher's (torchrun, deepspeed) inside a rank, else the ranks this
    process starts (``nproc``, 0 = none: 1) on each of the job's ``nodes`` (prefexp.launch.nodes)."""
    from ..engine import distributed

    if distributed.in_launch():
        return distributed.world_size()
    return nproc * nodes if nproc else 1


def read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} cannot be read ({exc}), so this resume cannot be checked against the run's "
                         f"config; restore the file, choose a new hydra.run.dir, or pass trainer.resume=never "
                         f"to start the run over") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"{path} has format {record.get('format') if isinstance(record, dict) else None!r}, "
                         f"this prefexp reads format {FORMAT}; resume with the prefexp that wrote it, or pass "
                         f"trainer.resume=never to start the run over")
    return record


def refusal(run_dir: Path, changes) -> str:
    return (f"{run_dir} holds a run with another config: {describe_changes(changes)} ; resume it with the same "
            f"config, choose a new hydra.run.dir, or pass trainer.resume=never to start it over")


def prepare_run_dir(run_dir: Path, record: dict, resume: str, hydra_dir: Optional[Path], writes: bool) -> None:
    """Before anything loads: refuse a resume with another config (:class:`RunConfigChanged`, the run
    dir as it was), or record a fresh run's config; ``resume=never`` first sets the previous run aside.
    ``writes``: this process may write the run dir (rank 0); other ranks only check."""
    from ..engine.checkpoints import newest_complete_checkpoint

    checkpoint = newest_complete_checkpoint(run_dir / layout.CHECKPOINTS) if resume == "auto" else None
    if checkpoint is None:
        if writes:
            if resume == "never":
                set_previous_run_aside(run_dir)
            write_text_atomic(run_dir / RUN_CONFIG, json.dumps(record, indent=2) + "\n")
        return
    path = run_dir / RUN_CONFIG
    if not path.is_file():
        log.warning("%s has no %s (a run dir of an older prefexp): resuming from %s without checking that this "
                    "command has the config the run was trained with", run_dir, RUN_CONFIG, checkpoint)
        return
    old = read_record(path)
    changes = record_changes(old, record)
    if changes:
        restore_hydra_files(hydra_dir, old)
        raise RunConfigChanged(refusal(run_dir, changes))


def restore_hydra_files(hydra_dir: Optional[Path], old: dict) -> None:
    """Put ``.hydra/*.yaml`` back as the run's fresh start wrote them (Hydra rewrote them for this
    launch before any of our code ran); a file the run did not have is removed."""
    if hydra_dir is None or "hydra_files" not in old:
        return
    for name in HYDRA_FILES:
        text = old["hydra_files"].get(name)
        if text is None:
            (hydra_dir / name).unlink(missing_ok=True)
        else:
            write_text_atomic(hydra_dir / name, text)


def set_previous_run_aside(run_dir: Path) -> Optional[Path]:
    """Move every file of a previous run in ``run_dir`` into ``previous-run-N/`` (renames, nothing is
    deleted); None when there was none."""
    entries = [p for p in sorted(run_dir.iterdir()) if p.name not in THIS_LAUNCH
               and not p.name.startswith((PREVIOUS_RUN, layout.RUN_LOCK, ".prefexp-write-test-"))]
    if not entries:
        return None
    n = 1
    while (run_dir / f"{PREVIOUS_RUN}{n}").exists():
        n += 1
    aside = run_dir / f"{PREVIOUS_RUN}{n}"
    aside.mkdir()
    for entry in entries:
        os.replace(entry, aside / entry.name)
    log.warning("trainer.resume=never: moved the previous run's files (%s) to %s; this run starts over",
                ", ".join(p.name for p in entries), aside)
    return aside


__all__ = ["RUN_CONFIG", "RunConfigChanged", "job_world_size", "prepare_run_dir", "read_record", "run_record",
           "set_previous_run_aside"]
