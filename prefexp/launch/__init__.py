"""How a training job is started and how sweep jobs fail: the job's nodes (``nodes``), rank spawning (``ranks``), failure
markers and objectives (``sweep_jobs``), the SLURM dry run (``slurm``). Run names live in
``prefexp.config.naming`` (the config's sweep-dir resolver reads them without importing this
package)."""
from ..config.naming import run_name, sweep_group
from .ranks import (
    forwarded_overrides,
    hydra_quote,
    rank_log_tail,
    ranks_to_spawn,
    resolve_devices,
    shared_run_dir_problem,
    spawn_ranks,
    strip_launcher_args,
    torchrun_command,
)
from .nodes import Nodes, job_nodes
from .slurm import render_sbatch
from .sweep_jobs import FAILED, final_metric, write_failure

__all__ = ["FAILED", "Nodes", "job_nodes", "final_metric", "forwarded_overrides", "hydra_quote", "rank_log_tail",
           "ranks_to_spawn", "render_sbatch", "resolve_devices", "run_name", "shared_run_dir_problem",
           "spawn_ranks", "strip_launcher_args", "sweep_group", "torchrun_command",
           "write_failure"]
