"""Hand a finished training run to the evaluation stage: ``evaluate=[sandbox,mt_bench]`` in a
training command runs ``python -m prefexp.evaluate checkpoint=<run dir> eval=<name>`` for each
benchmark once the final checkpoint and the W&B run are closed.

A separate process per benchmark keeps the evaluation's own Hydra config (``conf/evaluate.yaml``)
and its exit codes; ``evaluate_overrides`` are passed to every one (e.g. the judge's URL). A
failed evaluation is logged with the command to re-run; the training run itself stays done.
"""
from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from ..config import CONFIG_DIR, PROJECT_ROOT

log = logging.getLogger(__name__)


def benchmarks() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "eval").glob("*.yaml") if not p.stem.startswith("base"))


def evaluation_command(run_dir: Path, name: str, overrides: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "prefexp.evaluate", f"checkpoint={run_dir}", f"eval={name}", *overrides]


def evaluate_after_training(run_dir: Path, names: Sequence[str], overrides: Sequence[str]) -> dict[str, int]:
    """Exit code of each benchmark's evaluation (0 = results in ``<run dir>/eval/<name>/``)."""
    codes = {}
    for name in names:
        cmd = evaluation_command(run_dir, name, overrides)
        log.info("evaluating the final checkpoint: %s", shlex.join(cmd[1:]))
        codes[name] = subprocess.run(cmd, cwd=PROJECT_ROOT).returncode
        if codes[name]:
            log.error("evaluation %s failed (exit %d); re-run: python %s", name, codes[name], shlex.join(cmd[1:]))
    return codes
