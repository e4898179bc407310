"""Entry point: ``python -m prefexp.train [overrides]``.

Composes ``conf/train.yaml``, validates it once (before any model loads) and picks how the job
runs: in this process, as N ranks this process starts (``prefexp.launch.ranks``), or as one point
of a multirun whose failure is recorded instead of ending the sweep (``prefexp.launch.sweep_jobs``).
The work itself is the pipeline's (``prefexp.pipeline``); W&B is ``prefexp.tracking``; the
evaluation hand-off is ``prefexp.evaluation.handoff``. Only this module and ``prefexp.config``
touch the DictConfig.

Exit codes: 0 done, 2 bad input (one ``error:`` line naming the key or the file and line).
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import CONFIG_DIR
from .config.preflight import preflight_run_dir
from .config.validate import ConfigError, Settings, validate
from .errors import InputError

log = logging.getLogger("prefexp.train")


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Returns the job's final ``logger.objective`` value (NaN if none): what a sweeper optimises."""
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
    from .engine import distributed
    from .launch.ranks import ranks_to_spawn
    from .launch.sweep_jobs import final_metric

    if distributed.world_size() > 1 and not distributed.is_main_process():
        distributed.quiet_replica_logging()  # only rank 0 writes train.log
    with _input_errors_exit_2():
        settings = validate(cfg)
        run_dir = Path(settings.config.paths.run_dir)
        if distributed.is_main_process():  # writable, room for two checkpoints: before hours of training
            preflight_run_dir(settings.config, run_dir)
    c = settings.config
    nproc = ranks_to_spawn(c.trainer.devices, c.deepspeed.enabled, c.dry_run)
    if nproc:
        _spawn(settings, nproc, run_dir)
    else:
        with _input_errors_exit_2():
            _train_here(settings, OmegaConf.to_container(cfg, resolve=True), run_dir)
    if c.evaluate and not c.dry_run and distributed.is_main_process() and not os.environ.get("PREFEXP_SPAWNED"):
        from .evaluation.handoff import evaluate_after_training  # ranks we started: their parent does it

        evaluate_after_training(run_dir, c.evaluate, c.evaluate_overrides)
    return final_metric(run_dir, c.logger.objective)


def _train_here(settings: Settings, resolved: dict, run_dir: Path) -> None:
    from .engine import distributed
    from .pipeline import train
    from .tracking import finish_tracking, start_tracking

    wandb_run = None
    try:
        wandb_run = start_tracking(settings, resolved, run_dir, _task_overrides(), _sweep_dir())
        train(settings, resolved, run_dir)
    finally:
        finish_tracking(wandb_run)
        if distributed.in_launch():
            distributed.destroy_process_group()


def _spawn(settings: Settings, nproc: int, run_dir: Path) -> None:
    """trainer.devices=N / DeepSpeed: this process only starts the ranks and waits for them."""
    from .launch.ranks import spawn_ranks
    from .tracking import tracking_group

    group = tracking_group(settings.config, _sweep_dir())
    config_name = (_hydra().job.config_name if _hydra() else None) or "train"
    spawn_ranks(nproc, _task_overrides(), run_dir, config_name,
                env={"WANDB_RUN_GROUP": group} if group else None)  # ranks run outside the multirun


@contextmanager
def _input_errors_exit_2():
    """Bad input ends in one ``error:`` line and exit 2; in a multirun it fails only its job."""
    from .reward import RewardScoresMissing

    try:
        yield
    except (ConfigError, InputError, FileNotFoundError, RewardScoresMissing) as exc:
        if _is_multirun():
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun() -> bool:
    from hydra.types import RunMode

    return _hydra() is not None and _hydra().mode == RunMode.MULTIRUN


def _task_overrides() -> list[str]:
    return list(_hydra().overrides.task) if _hydra() else []


def _sweep_dir() -> str | None:
    return _hydra().sweep.dir if _is_multirun() else None


if __name__ == "__main__":
    from .launch.ranks import shared_run_dir_problem, strip_launcher_args

    sys.argv = strip_launcher_args(sys.argv)
    problem = shared_run_dir_problem(sys.argv[1:])  # one run dir for all ranks
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
