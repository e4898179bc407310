"""Rank spawning: one command, many ranks.

``trainer.devices=N`` (or ``auto``: every CUDA GPU, 1 on CPU): ``python -m prefexp.train`` is the
launcher. Its Hydra job composes and validates the config, creates the one run dir and writes
``.hydra/`` there, then re-executes itself as ``python -m torch.distributed.run --standalone
--nproc-per-node N -m prefexp.train <same overrides> hydra.run.dir=<that dir>
hydra.output_subdir=null``. Every rank therefore sees the same config and the same run dir (no
per-rank timestamp), and only rank 0 writes. A DeepSpeed run is always started this way, even with
one device (DeepSpeed needs a launcher's env). Under SLURM with several nodes the same command
joins a static rendezvous on the first node (prefexp.launch.nodes). Inside a rank (``RANK``/``WORLD_SIZE`` set by torchrun,
``deepspeed`` or the above) nothing is re-launched.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from .nodes import Nodes, torchrun_node_args

log = logging.getLogger(__name__)

# Overrides that must not travel from the launcher to its ranks (the launcher sets them itself).
_NOT_FORWARDED = ("hydra.run.dir=", "hydra.output_subdir=", "hydra.sweep.dir=")


def strip_launcher_args(argv: list[str]) -> list[str]:
    """The `deepspeed` launcher appends --local_rank=N; it must never reach Hydra's parser."""
    kept = []
    skip_next = False
    for i, arg in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if arg.startswith("--local_rank") or arg.startswith("--local-rank"):
            if "=" in arg:
                os.environ.setdefault("LOCAL_RANK", arg.split("=", 1)[1])
            elif i + 1 < len(argv):
                os.environ.setdefault("LOCAL_RANK", argv[i + 1])
                skip_next = True
            continue
        kept.append(arg)
    return kept


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_devices(devices: Any) -> int:
    """trainer.devices -> number of ranks on this node: an int >= 1, or "auto" (every GPU, 1 on CPU)."""
    if isinstance(devices, str) and devices.strip().lower() == "auto":
        return max(1, cuda_device_count())
    n = int(devices)
    gpus = cuda_device_count()
    if gpus and n > gpus:
        raise ValueError(f"trainer.devices={n} but this node has {gpus} CUDA GPU(s); pass trainer.devices=auto or <= {gpus}")
    return n


def ranks_to_spawn(devices: Any, deepspeed: bool, dry_run: bool, nodes: Nodes = Nodes()) -> int:
    """How many ranks this process must start on its node (0: run the job in this process)."""
    from ..engine.distributed import in_launch

    if in_launch() or dry_run:
        return 0
    n = resolve_devices(devices)
    return n if (n > 1 or deepspeed or nodes.multi) else 0


def shared_run_dir_problem(argv: Sequence[str]) -> str | None:
    """Under an external multi-rank launcher every rank must be given the same run dir explicitly
    (Hydra's default dir is a timestamp, taken once per rank). Returns the error, or None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    key = "hydra.sweep.dir=" if ("-m" in argv or "--multirun" in argv) else "hydra.run.dir="
    if any(a.startswith(key) for a in argv):
        return None
    return (f"{os.environ['WORLD_SIZE']} ranks need one shared run dir: pass {key}<dir> (a timestamped default "
            "would give each rank its own), or let prefexp start the ranks: python -m prefexp.train trainer.devices=N")


def forwarded_overrides(task_overrides: Sequence[str]) -> list[str]:
    return [o for o in task_overrides if not o.startswith(_NOT_FORWARDED)]


def torchrun_command(nproc: int, overrides: Sequence[str], run_dir: Path, config_name: str = "train",
                     nodes: Nodes = Nodes(), capture_logs: bool = True) -> list[str]:
    """The command line that starts ``nproc`` ranks of ``python -m prefexp.train`` in ``run_dir`` on
    this node of ``nodes`` (prefexp.launch.nodes).

    capture_logs: torchrun keeps a copy of every rank's stdout/stderr under ``<run dir>/.launch``
    (``.launch/node-K`` on several nodes; still shown on the console; what FAILED quotes). Off on a
    terminal, where the ranks then inherit it and rank 0 shows the Trainer's live progress bar."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", *torchrun_node_args(nodes)]
    if capture_logs:
        cmd += [f"--log-dir={launch_log_dir(run_dir, nodes)}", "--tee=3"]
    cmd += ["-m", "prefexp.train"]
    if config_name != "train":
        cmd += ["--config-name", config_name]
    # quoted: a sweep job's dir name holds '=' and ',' (hydra.job.override_dirname)
    return cmd + forwarded_overrides(overrides) + [f"hydra.run.dir={hydra_quote(str(run_dir))}",
                                                   "hydra.output_subdir=null"]


def hydra_quote(value: str) -> str:
    """A Hydra override value that is taken literally (commas, '=', spaces, quotes, ``${``)."""
    from ..launch.override_quoting import quote_override_value

    return quote_override_value(value)


# Signals the launcher passes on to torchrun, which passes them on to every rank (and SIGKILLs a
# rank still running 30 s later: torch.distributed.elastic's shutdown timeout).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def launch_log_dir(run_dir: Path, nodes: Nodes) -> Path:
    return run_dir / ".launch" / f"node-{nodes.rank}" if nodes.multi else run_dir / ".launch"


def spawn_ranks(nproc: int, overrides: Sequence[str], run_dir: Path, config_name: str = "train",
                env: dict[str, str] | None = None, nodes: Nodes = Nodes()) -> int | None:
    """Start the ranks (``env`` added to theirs) and wait. Returns the signal number when the
    launcher was signalled (the ranks then saved their step and stopped: engine/preemption.py),
    else None; raises RuntimeError naming the rank logs if any rank failed otherwise.

    No rank outlives the launcher: SIGTERM / SIGINT / SIGHUP to it are forwarded to torchrun, and
    torchrun gets SIGTERM from the kernel if the launcher dies without a word (SIGKILL, OOM)."""
    cmd = torchrun_command(nproc, overrides, run_dir, config_name, nodes, capture_logs=not sys.stderr.isatty())
    log.info("launching %d rank(s)%s in %s: %s", nproc, nodes.where, run_dir, " ".join(cmd[1:]))
    env = {**os.environ, **(env or {}), "PREFEXP_SPAWNED": "1"}  # the launching process evaluates, not rank 0
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    # Own session: a Ctrl-C on the terminal reaches the launcher only, which forwards it once.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=die_with_parent)
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        log.warning("%s: passed on to the ranks; they finish their step, save and stop", signal.Signals(signum).name)
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        rc = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # the launcher fails itself (an exception above): take the ranks along
            proc.kill()
    if received:
        return received[0]
    if rc != 0:
        raise RuntimeError(f"{nproc} rank(s){nodes.where} exited with code {rc}; per-rank logs: "
                           f"{launch_log_dir(run_dir, nodes)}\n" + rank_log_tail(run_dir))
    return None


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies (prctl PR_SET_PDEATHSIG;
    elsewhere a no-op). Used for torchrun (parent: the launcher) and inside every spawned rank
    (parent: torchrun), so that even a SIGKILL of either leaves no rank running."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signum))  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)


def rank_log_tail(run_dir: Path, lines: int = 40) -> str:
    """The last lines of every rank's stderr captured by torchrun (empty if none)."""
    parts = []
    for path in sorted((run_dir / ".launch").rglob("stderr.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        if text:
            parts.append(f"--- {path.relative_to(run_dir)}\n" + "\n".join(text))
    return "\n".join(parts)


def rank_error_line(run_dir: Path, prefix: str) -> str | None:
    """The first line starting with ``prefix`` in any rank's captured stderr (None if none), so
    the launcher can repeat a rank's one-line error instead of a wall of rank logs."""
    for path in sorted((run_dir / ".launch").rglob("stderr.log")):
        for line in path.read_text(errors="replace").splitlines():
            line = line.split("]:", 1)[1] if line.startswith("[default") and "]:" in line else line  # --tee prefix
            if line.startswith(prefix):
                return line
    return None
