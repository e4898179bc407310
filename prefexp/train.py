"""Entry point: ``python -m prefexp.train [overrides]``.

Composes ``conf/train.yaml``, validates it once (before any model loads), then hands typed
settings to the pipeline. Only this module and ``prefexp.config`` touch the DictConfig.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import CONFIG_DIR
from .config.validate import ConfigError, validate
from .errors import InputError

log = logging.getLogger("prefexp.train")


def _strip_launcher_args(argv: list[str]) -> list[str]:
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


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Returns the job's final ``logger.objective`` value (NaN if none): what a sweeper optimises."""
    if not _is_multirun():
        return _run(cfg)
    # [scaling] multirun: a failed job leaves FAILED (its traceback) in its run dir and returns NaN,
    # so the remaining sweep points still run and the sweep summary reports it (prefexp.launch).
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from .launch import write_failure

    try:
        return _run(cfg)
    except Exception as exc:  # noqa: BLE001 - any failure of one sweep point
        marker = write_failure(Path(HydraConfig.get().runtime.output_dir), exc)
        log.error("job failed: %s: %s (traceback in %s)", type(exc).__name__, exc, marker)
        return float("nan")


def _run(cfg: DictConfig) -> float | None:
    from pathlib import Path

    from .engine import distributed
    from .launch import final_metric, ranks_to_spawn, run_name as overrides_name, spawn_ranks, sweep_group, wandb_mode

    if distributed.world_size() > 1 and not distributed.is_main_process():
        distributed.quiet_replica_logging()  # [scaling] only rank 0 writes train.log
    try:
        settings = validate(cfg)
    except ConfigError as exc:
        if _is_multirun():
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_dir = Path(settings.config.paths.run_dir)

    from hydra.core.hydra_config import HydraConfig

    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    c = settings.config
    # [scaling] W&B: group = the sweep, name = the overrides, mode online only with a key
    run_name = c.logger.name or overrides_name(overrides)
    group = c.logger.group
    if group is None and _is_multirun():
        group = sweep_group(HydraConfig.get().sweep.dir)
    # [scaling] trainer.devices=N / deepspeed: this process only starts the ranks (prefexp.launch)
    nproc = ranks_to_spawn(c.trainer.devices, c.deepspeed.enabled, c.dry_run)
    if nproc:
        config_name = HydraConfig.get().job.config_name if HydraConfig.initialized() else "train"
        spawn_ranks(nproc, list(overrides), run_dir, config_name or "train",
                    env={"WANDB_RUN_GROUP": group} if group else None)  # ranks run outside the multirun
        _hand_off_evaluation(c, run_dir)
        return final_metric(run_dir, c.logger.objective)
    logger_cfg = c.logger
    if c.logger.backend == "wandb" and c.logger.mode != "disabled":
        logger_cfg = replace(c.logger, mode=wandb_mode(c.logger.mode), group=group)
        os.environ["WANDB_JOB_TYPE"] = c.logger.job_type
    tags = [f"loss:{settings.loss_name}", f"tau:{c.tau}", f"router:{c.router.name}", f"curriculum:{c.curriculum.order}"]
    from .engine.run import train
    from .logger import start_wandb
    from .reward import RewardScoresMissing

    wandb_run = None
    try:
        if not c.dry_run and distributed.is_main_process():
            wandb_run = start_wandb(logger_cfg, resolved, run_dir, run_name, tags)
        train(settings, resolved, run_dir)
    except (InputError, FileNotFoundError, RewardScoresMissing) as exc:
        if _is_multirun():
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if wandb_run is not None:
            wandb_run.finish()
            import wandb

            wandb.teardown()  # wandb 0.31 offline can lose the run if the process exits right after finish()
        if distributed.in_launch():
            distributed.destroy_process_group()
    if distributed.is_main_process() and not os.environ.get("PREFEXP_SPAWNED"):
        _hand_off_evaluation(c, run_dir)  # [scaling] ranks started by prefexp.launch: their parent does it
    return final_metric(run_dir, c.logger.objective)


def _hand_off_evaluation(c, run_dir) -> None:
    if c.evaluate and not c.dry_run:
        from .evaluation.handoff import evaluate_after_training

        evaluate_after_training(run_dir, c.evaluate, c.evaluate_overrides)


if __name__ == "__main__":
    sys.argv = _strip_launcher_args(sys.argv)
    from .launch import shared_run_dir_problem

    problem = shared_run_dir_problem(sys.argv[1:])  # [scaling] one run dir for all ranks
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
