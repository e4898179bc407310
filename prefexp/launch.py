"""How a training job is started, named and failed: one command, many ranks; sweeps that survive.

* ``trainer.devices=N`` (or ``auto``: every CUDA GPU, 1 on CPU): ``python -m prefexp.train`` is
  the launcher. Its Hydra job composes and validates the config, creates the one run dir and
  writes ``.hydra/`` there, then re-executes itself as
  ``python -m torch.distributed.run --standalone --nproc-per-node N -m prefexp.train <same
  overrides> hydra.run.dir=<that dir> hydra.output_subdir=null``. Every rank therefore sees the
  same config and the same run dir (no per-rank timestamp), and only rank 0 writes. A DeepSpeed
  run is always started this way, even with one device (DeepSpeed needs a launcher's env).
  Under SLURM with several nodes the same command joins a c10d rendezvous on the first node.
* Inside a rank (``RANK``/``WORLD_SIZE`` set by torchrun, ``deepspeed`` or the above) nothing is
  re-launched.
* W&B naming: group = the sweep, name = the job's overrides, tags from the config.
* A failed sweep job writes ``FAILED`` (the traceback) into its run dir and returns NaN, so the
  basic launcher goes on with the next point and Optuna records a failed trial.

``python -m prefexp.launch sbatch [overrides]`` prints the sbatch script that
``hydra/launcher=slurm`` would submit for those overrides (a dry run; no SLURM needed).
"""
from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

FAILED = "FAILED"
# Overrides that must not travel from the launcher to its ranks (the launcher sets them itself).
_NOT_FORWARDED = ("hydra.run.dir=", "hydra.output_subdir=", "hydra.sweep.dir=")


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


def ranks_to_spawn(devices: Any, deepspeed: bool, dry_run: bool) -> int:
    """How many ranks this process must start (0: run the job in this process)."""
    from .engine.distributed import in_launch

    if in_launch() or dry_run:
        return 0
    n = resolve_devices(devices)
    return n if (n > 1 or deepspeed) else 0


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


def slurm_rendezvous() -> dict | None:
    """nnodes / node rank / endpoint of a multi-node SLURM allocation (None on one node)."""
    nnodes = int(os.environ.get("SLURM_NNODES", os.environ.get("SLURM_JOB_NUM_NODES", "1")))
    if nnodes <= 1:
        return None
    try:
        import submitit

        first = submitit.JobEnvironment().hostnames[0]
    except Exception:  # noqa: BLE001 - not a submitit job: ask SLURM
        out = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
                             capture_output=True, text=True, check=True)
        first = out.stdout.split()[0]
    return {"nnodes": nnodes, "node_rank": int(os.environ.get("SLURM_NODEID", "0")),
            "endpoint": f"{first}:{os.environ.get('PREFEXP_RDZV_PORT', '29400')}",
            "id": os.environ.get("SLURM_JOB_ID", "prefexp")}


def torchrun_command(nproc: int, overrides: Sequence[str], run_dir: Path, config_name: str = "train",
                     rendezvous: dict | None = None, capture_logs: bool = True) -> list[str]:
    """The command line that starts ``nproc`` ranks of ``python -m prefexp.train`` in ``run_dir``.

    capture_logs: torchrun keeps a copy of every rank's stdout/stderr under ``<run dir>/.launch``
    (still shown on the console; what FAILED quotes). Off on a terminal, where the ranks then
    inherit it and rank 0 shows the Trainer's live progress bar."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if rendezvous is None:
        cmd.append("--standalone")  # c10d store on a free port: concurrent launches never clash
    else:
        cmd += [f"--nnodes={rendezvous['nnodes']}", f"--node-rank={rendezvous['node_rank']}", "--rdzv-backend=c10d",
                f"--rdzv-endpoint={rendezvous['endpoint']}", f"--rdzv-id={rendezvous['id']}"]
    if capture_logs:
        cmd += [f"--log-dir={run_dir / '.launch'}", "--tee=3"]
    cmd += ["-m", "prefexp.train"]
    if config_name != "train":
        cmd += ["--config-name", config_name]
    # quoted: a sweep job's dir name holds '=' and ',' (hydra.job.override_dirname)
    return cmd + forwarded_overrides(overrides) + [f"hydra.run.dir={hydra_quote(str(run_dir))}",
                                                   "hydra.output_subdir=null"]


def hydra_quote(value: str) -> str:
    """A Hydra override value that is taken literally (commas, '=', spaces, brackets)."""
    return "'" + value.replace("'", "\\'") + "'"


def spawn_ranks(nproc: int, overrides: Sequence[str], run_dir: Path, config_name: str = "train",
                env: dict[str, str] | None = None) -> None:
    """Start the ranks (``env`` added to theirs) and wait; raises RuntimeError naming the rank logs
    if any rank failed."""
    cmd = torchrun_command(nproc, overrides, run_dir, config_name, slurm_rendezvous(),
                           capture_logs=not sys.stderr.isatty())
    log.info("launching %d rank(s) in %s: %s", nproc, run_dir, " ".join(cmd[1:]))
    env = {**os.environ, **(env or {}), "PREFEXP_SPAWNED": "1"}  # the launching process evaluates, not rank 0
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    rc = subprocess.run(cmd, env=env).returncode
    if rc != 0:
        raise RuntimeError(f"{nproc} rank(s) exited with code {rc}; per-rank logs: {run_dir / '.launch'}\n"
                           + rank_log_tail(run_dir))


def rank_log_tail(run_dir: Path, lines: int = 40) -> str:
    """The last lines of every rank's stderr captured by torchrun (empty if none)."""
    parts = []
    for path in sorted((run_dir / ".launch").rglob("stderr.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        if text:
            parts.append(f"--- {path.relative_to(run_dir)}\n" + "\n".join(text))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------- sweeps

def write_failure(run_dir: Path, exc: BaseException) -> Path:
    """FAILED marker: a one-line summary (read by the sweep summary and the report), then the traceback."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FAILED
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())
    path.write_text(summary + "\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def final_metric(run_dir: Path, key: str) -> float:
    """The last logged value of ``key`` in metrics.jsonl (NaN if absent): a job's sweep objective."""
    import json

    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return math.nan
    for line in reversed(path.read_text().splitlines()):
        row = json.loads(line)
        if key in row:
            return float(row[key])
    return math.nan


# ------------------------------------------------------------------------------------------- W&B

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


def has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """online only when asked *and* a key exists; otherwise offline, with a warning."""
    if requested == "online" and not has_wandb_key():
        log.warning("logger.mode=online but no W&B key (WANDB_API_KEY or ~/.netrc); logging offline instead "
                    "(upload later with `wandb sync <run dir>/wandb/offline-run-*`)")
        return "offline"
    return requested


# ------------------------------------------------------------------------------------ SLURM dry run

def render_sbatch(launcher: dict, num_jobs: int = 1) -> str:
    """The sbatch script hydra-submitit-launcher would submit with ``launcher`` (hydra.launcher,
    resolved) for ``num_jobs`` sweep points. Mirrors the plugin's parameter mapping; no SLURM needed."""
    from unittest import mock

    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import SlurmExecutor

    params = {k: v for k, v in launcher.items() if k != "_target_"}
    init = {"folder": params.pop("submitit_folder")}
    if "max_num_timeout" in params:
        init["slurm_max_num_timeout"] = params.pop("max_num_timeout")
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    with mock.patch.object(SlurmExecutor, "affinity", classmethod(lambda cls: 1)):  # "srun" need not exist
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    inner = executor._executor
    if num_jobs > 1:
        inner.parameters["map_count"] = num_jobs  # what an array submission sets
    return inner._make_submission_file_text(inner._submitit_command_str, "dry-run")


def _sbatch_cli(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from .config import CONFIG_DIR

    parsed = OverridesParser.create().parse_overrides(overrides)
    num_jobs = 1
    for o in parsed:  # a,b,c sweeps multiply the array size
        if o.is_sweep_override():
            num_jobs *= len(list(o.sweep_string_iterator()))
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    fixed += [f"{o.key_or_group}={next(iter(o.sweep_string_iterator()))}" for o in parsed if o.is_sweep_override()]
    if not any(o.startswith("hydra/launcher=") for o in fixed):
        fixed.append("hydra/launcher=slurm")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        # hydra.job.name is only set by a real launch (the module name); the job name follows it
        cfg = compose(config_name="train", overrides=fixed + ["paths.run_dir=/dry-run", "hydra.job.name=train"],
                      return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    print(render_sbatch(launcher, num_jobs))


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "sbatch":
        print("usage: python -m prefexp.launch sbatch [hydra overrides, sweeps allowed]", file=sys.stderr)
        sys.exit(2)
    _sbatch_cli(args[1:])
