"""SLURM dry run: ``python -m prefexp.launch sbatch [overrides]`` prints the sbatch script that
``hydra/launcher=slurm`` would submit for those overrides (no SLURM needed)."""
from __future__ import annotations


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


def sbatch_cli(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from ..config import CONFIG_DIR

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
