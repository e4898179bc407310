"""Hand a finished training run to the evaluation stage: ``evaluate=[sandbox,mt_bench]`` in a
training command runs ``python -m prefexp.evaluate 'checkpoint=<run dir>' eval=<name>`` for each
benchmark once the final checkpoint and the W&B run are closed.

A separate process per benchmark keeps the evaluation's own Hydra config (``conf/evaluate.yaml``)
and its exit codes; ``evaluate_overrides`` are passed to every one (e.g. the judge's URL). The run
dir is quoted for Hydra (a sweep job's dir holds ``=`` and ``,``; any path may hold spaces or
quotes), and the re-run command is logged quoted for a POSIX shell, so it works when pasted.

A failed evaluation writes ``<run dir>/eval/<name>/FAILED``: a one-line summary (exit code and the
re-run command), then the tail of its stderr. The training run itself stays done, but the sweep
summary and the report count the job as failed (``prefexp.reporting.collect.status_of``) until a
re-run writes a newer ``results.json``.
"""
from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Sequence

from ..config import PROJECT_ROOT
from ..config import layout
from ..launch.override_quoting import override

log = logging.getLogger(__name__)
EVAL_FAILED = layout.FAILED  # <run dir>/eval/<benchmark>/FAILED
_STDERR_TAIL_LINES = 40


def evaluation_command(run_dir: Path, name: str, overrides: Sequence[str]) -> list[str]:
    """argv of one benchmark's evaluation; the run dir absolute (the process runs in the project root)."""
    return [sys.executable, "-m", "prefexp.evaluate", override("checkpoint", str(Path(run_dir).absolute())),
            f"eval={name}", *overrides]


def shell_command(cmd: Sequence[str]) -> str:
    """``cmd`` as one line to paste into a POSIX shell (run from the project root)."""
    return f"cd {shlex.quote(str(PROJECT_ROOT))} && {shlex.join(cmd)}"


def failure_marker(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / layout.EVAL / name / EVAL_FAILED


def _run_teeing_stderr(cmd: list[str]) -> tuple[int, list[str]]:
    """Run ``cmd``; its stderr still reaches ours line by line, and its last lines are kept."""
    tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    with subprocess.Popen(cmd, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True, errors="replace") as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line.rstrip("\n"))
    return proc.returncode, list(tail)


def evaluate_after_training(run_dir: Path, names: Sequence[str], overrides: Sequence[str]) -> dict[str, int]:
    """Exit code of each benchmark's evaluation (0 = results in ``<run dir>/eval/<name>/``)."""
    codes = {}
    for name in names:
        cmd = evaluation_command(run_dir, name, overrides)
        marker = failure_marker(run_dir, name)
        marker.unlink(missing_ok=True)  # this attempt decides
        log.info("evaluating the final checkpoint: %s", shlex.join(cmd[1:]))
        codes[name], tail = _run_teeing_stderr(cmd)
        if codes[name]:
            rerun = shell_command(cmd)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"EvaluationFailed: eval={name} exited with code {codes[name]}; re-run: {rerun}\n\n"
                              + "\n".join(tail) + "\n")
            log.error("evaluation %s failed (exit %d); re-run: %s", name, codes[name], rerun)
    return codes
