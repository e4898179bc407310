"""Entry point: ``python -m prefexp.train [overrides]``.

Composes ``conf/train.yaml``, validates it once (before any model loads) and picks how the job
runs: in this process, as N ranks this process starts (``prefexp.launch.ranks``), or as one point
of a multirun whose failure is recorded instead of ending the sweep (``prefexp.launch.sweep_jobs``).
The work itself is the pipeline's (``prefexp.pipeline``); W&B is ``prefexp.tracking``; the
evaluation hand-off is ``prefexp.evaluation.handoff``. Only this module and ``prefexp.config``
touch the DictConfig.

Exit codes: 0 done, 2 bad input (one ``error:`` line naming the key or the file and line; also a
run dir that a live run holds, or a resume whose config differs from the run's: launch/run_config.py),
3 stopped by the non-finite guard (a NaN / inf loss or gradient norm, ``trainer.on_nonfinite=stop``),
4 a checkpoint could not be written (a full disk), 128 + N stopped by signal N after saving a
checkpoint (143 SIGTERM, 130 SIGINT; the printed command resumes).
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import CONFIG_DIR, layout
from .config.settings import ConfigError, Settings
from .errors import InputError, print_error
from .redact import install_log_redaction
from .setup.preflight import preflight_run_dir
from .setup.validate import validate

log = logging.getLogger("prefexp.train")


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Returns the job's final ``logger.objective`` value (NaN if none): what a sweeper optimises."""
    install_log_redaction()  # no log line carries an API key (prefexp/redact.py)
    if not _is_multirun():
        return run(cfg)
    from .launch.sweep_jobs import write_failure

    try:
        return run(cfg)
    except Exception as exc:  # noqa: BLE001 - one failed sweep point must not end the sweep
        marker = write_failure(Path(_hydra().runtime.output_dir), exc)
        log.error("job failed: %s: %s (traceback in %s)", type(exc).__name__, exc, marker)
        return float("nan")


def run(cfg: DictConfig) -> float:
    from .engine.library_noise import quiet_libraries

    quiet_libraries()  # before transformers loads DeepSpeed
    from .engine import distributed
    from .launch.ranks import ranks_to_spawn
    from .launch.sweep_jobs import final_metric

    if distributed.in_launch() and not distributed.is_main_process():
        distributed.quiet_replica_logging()  # only rank 0 writes train.log
    if os.environ.get("PREFEXP_SPAWNED") and distributed.in_launch():
        from .launch.ranks import die_with_parent

        die_with_parent()  # torchrun killed outright: this rank still gets SIGTERM, saves and stops
    with _input_errors_exit_2():
        settings = validate(cfg)
        run_dir = Path(settings.config.paths.run_dir)
        if distributed.is_main_process():  # writable, room for two checkpoints: before hours of training
            preflight_run_dir(settings.config, run_dir)
    c = settings.config
    with _input_errors_exit_2():
        nodes = _this_node(settings)
    nproc = ranks_to_spawn(c.trainer.devices, c.deepspeed.enabled, c.dry_run, nodes)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    with _input_errors_exit_2():
        lock = _hold_run_dir(run_dir)
    try:
        with _input_errors_exit_2():  # a resume with another config: refused before anything loads
            _check_run_config(settings, resolved, run_dir, nproc, nodes.count)
        with _stops_exit(run_dir):
            if nproc:
                _spawn(settings, nproc, run_dir, nodes)
            else:
                with _input_errors_exit_2():
                    _train_here(settings, resolved, run_dir)
    finally:
        if lock:
            lock.release()
    if c.evaluate and not c.dry_run and distributed.is_main_process() and not os.environ.get("PREFEXP_SPAWNED"):
        from .evaluation.handoff import evaluate_after_training  # ranks we started: their parent does it

        evaluate_after_training(run_dir, c.evaluate, c.evaluate_overrides)
    if not c.dry_run and distributed.is_main_process() and not os.environ.get("PREFEXP_SPAWNED"):
        from .reporting.run_summary import run_summary

        print("\n".join(run_summary(run_dir)), flush=True)  # the job ends with its answer
    return final_metric(run_dir, c.logger.objective)


def _this_node(settings: Settings):
    """The job's nodes as this launcher sees them (prefexp.launch.nodes; one node inside a rank).
    A launcher on node > 0 is not the job's main process: it only starts its node's ranks."""
    from .engine import distributed
    from .launch.nodes import Nodes, enter_node, job_nodes

    if distributed.in_launch():
        return Nodes()
    t = settings.config.trainer
    nodes = job_nodes(t.nodes, t.rdzv_endpoint)
    if nodes.multi and not _is_multirun() and not any(o.startswith("hydra.run.dir=") for o in _hydra_overrides()):
        raise InputError(f"{nodes.count} nodes need one shared run dir: pass hydra.run.dir=<dir on a shared "
                         "filesystem> (the same on every node; a timestamped default would differ per node)")
    enter_node(nodes)
    if not distributed.is_main_process():
        distributed.quiet_replica_logging()  # node 0's launcher writes train.log
    return nodes


def _check_run_config(settings: Settings, resolved: dict, run_dir: Path, nproc: int, nodes: int = 1) -> None:
    """Record a fresh run's config in run_config.json, or refuse a resume with another one
    (launch/run_config.py). Ranks that prefexp started skip it: their launcher checked, before them."""
    from .engine import distributed
    from .launch.run_config import job_world_size, prepare_run_dir, run_record

    if os.environ.get("PREFEXP_SPAWNED") and distributed.in_launch():
        return
    hc = _hydra()
    hydra_dir = Path(hc.runtime.output_dir) / hc.output_subdir if hc and hc.output_subdir else None
    choices = dict(hc.runtime.choices) if hc else {"loss": settings.loss_name}
    record = run_record(resolved, choices, job_world_size(nproc, nodes), hydra_dir)
    prepare_run_dir(run_dir, record, settings.config.trainer.resume, hydra_dir,
                    writes=distributed.is_main_process())


def _train_here(settings: Settings, resolved: dict, run_dir: Path) -> None:
    from .engine import distributed
    from .engine.shared_paths import check_shared_paths
    from .pipeline import train
    from .tracking import finish_tracking, start_tracking

    wandb_run = None
    try:
        c = settings.config  # several nodes: every one sees the run dir (and the cache, unless declared node-local)
        check_shared_paths(run_dir, Path(c.paths.cache_dir), c.paths.cache_shared)
        wandb_run = start_tracking(settings, resolved, run_dir, _task_overrides(), _sweep_dir())
        train(settings, resolved, run_dir)
    finally:
        finish_tracking(wandb_run)
        if distributed.in_launch():
            distributed.destroy_process_group()


def _spawn(settings: Settings, nproc: int, run_dir: Path, nodes) -> None:
    """trainer.devices=N / DeepSpeed / several nodes: this process only starts its node's ranks and waits."""
    from .launch.ranks import spawn_ranks
    from .tracking import tracking_group

    from .engine.checkpoints import newest_complete_checkpoint
    from .engine.preemption import Preempted

    group = tracking_group(settings.config, _sweep_dir())
    config_name = (_hydra().job.config_name if _hydra() else None) or "train"
    try:
        signum = spawn_ranks(nproc, _task_overrides(), run_dir, config_name,
                             env={"WANDB_RUN_GROUP": group} if group else None,  # ranks run outside the multirun
                             nodes=nodes)
    except RuntimeError as exc:
        if _is_multirun():
            raise  # the sweep records it in the job's FAILED
        _exit_on_rank_failure(exc, run_dir, nodes)
    if signum is not None:
        checkpoint = newest_complete_checkpoint(run_dir / layout.CHECKPOINTS)
        raise Preempted(signum, int(checkpoint.name.split("-")[1]) if checkpoint else 0, checkpoint and str(checkpoint))


def _exit_on_rank_failure(exc: RuntimeError, run_dir: Path, nodes) -> None:
    """A rank failed: one line and an exit code. A rank's documented error (non-finite, a failed
    write, bad input) is repeated with its code; anything else (a crash, a killed rank, a lost node)
    ends in exit 1 naming the rank logs and how to resume from the newest complete checkpoint."""
    from .engine.checkpoints import EXIT_WRITE_FAILED, newest_complete_checkpoint
    from .engine.nonfinite import EXIT_NONFINITE
    from .launch.ranks import rank_error_line

    for prefix, code in (("error: non-finite", EXIT_NONFINITE), ("error: could not write", EXIT_WRITE_FAILED),
                         ("error: ", 2)):
        line = rank_error_line(run_dir, prefix)
        if line is not None:
            print(line, file=sys.stderr, flush=True)
            sys.exit(code)
    checkpoint = newest_complete_checkpoint(run_dir / layout.CHECKPOINTS)
    where = f" on each of the {nodes.count} nodes (NODE_RANK as before)" if nodes.multi else ""
    resume = (f"resume from {checkpoint.name} with{where}: {_resume_command(run_dir)}" if checkpoint
              else "no checkpoint was complete yet")
    print_error(f"{str(exc).splitlines()[0]}; {resume}")
    sys.exit(1)


def _resume_command(run_dir: Path) -> str:
    import shlex

    return shlex.join([sys.executable, "-m", "prefexp.train",
                       *[o for o in _task_overrides() if not o.startswith("hydra.run.dir=")], f"hydra.run.dir={run_dir}"])


def _hold_run_dir(run_dir: Path):
    """The run dir's lock (launch/run_lock.py), held by the outermost process of the job: this one,
    unless it is a rank that prefexp's own launcher started (the launcher holds it) or a rank > 0."""
    from .engine import distributed
    from .launch.run_lock import RunLock

    if (os.environ.get("PREFEXP_SPAWNED") and distributed.in_launch()) or not distributed.is_main_process():
        return None
    return RunLock(run_dir).acquire()


@contextmanager
def _stops_exit(run_dir: Path):
    """A signal (checkpoint saved), the non-finite guard or a failed checkpoint write ends the job in one
    line and its exit code."""
    from .engine import distributed
    from .engine.checkpoints import CheckpointWriteError
    from .engine.nonfinite import NonFiniteStop
    from .engine.preemption import Preempted

    try:
        yield
    except Preempted as exc:
        if distributed.is_main_process() and not (os.environ.get("PREFEXP_SPAWNED") and distributed.in_launch()):
            print(f"stopped: {exc.args[0].split(';')[0]}; resume with: {_resume_command(run_dir)}", file=sys.stderr,
                  flush=True)
        sys.exit(exc.exit_code)
    except (NonFiniteStop, CheckpointWriteError) as exc:
        if distributed.is_main_process() or os.environ.get("PREFEXP_SPAWNED"):  # the launcher repeats one rank's
            print_error(exc)
        sys.exit(exc.exit_code)


@contextmanager
def _input_errors_exit_2():
    """Bad input ends in one ``error:`` line and exit 2; in a multirun it fails only its job."""
    from .reward import RewardScoresMissing

    try:
        yield
    except (ConfigError, InputError, FileNotFoundError, RewardScoresMissing) as exc:
        if _is_multirun():
            raise
        print_error(exc)
        sys.exit(2)


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun() -> bool:
    from hydra.types import RunMode

    return _hydra() is not None and _hydra().mode == RunMode.MULTIRUN


def _task_overrides() -> list[str]:
    return list(_hydra().overrides.task) if _hydra() else []


def _hydra_overrides() -> list[str]:
    return list(_hydra().overrides.hydra) if _hydra() else []


def _sweep_dir() -> str | None:
    return _hydra().sweep.dir if _is_multirun() else None


if __name__ == "__main__":
    from .config.group_options import unknown_group_option
    from .launch.ranks import shared_run_dir_problem, strip_launcher_args
    from .launch.run_lock import refusal_before_hydra

    sys.argv = strip_launcher_args(sys.argv)
    # one run dir for all ranks, not one that a live run holds, and group options that exist
    problem = (shared_run_dir_problem(sys.argv[1:]) or refusal_before_hydra(sys.argv[1:])
               or unknown_group_option(sys.argv[1:], CONFIG_DIR))
    if problem:
        print_error(problem)
        sys.exit(2)
    main()
