"""hydra-submitit-launcher's SLURM launcher, made to survive jobs that SLURM ends.

``conf/hydra/launcher/slurm.yaml`` points ``_target_`` here. Two differences from the plugin's
``SlurmLauncher`` (whose ``launch`` is copied from hydra-submitit-launcher 1.2.0, the pinned one):

* **A job that SLURM ends** (``scancel``, preemption without requeue, time limit, node failure)
  does not abort the sweep: the plugin raises on the first such job, so the other jobs' results
  and the sweep summary were lost. Here the job gets ``<job dir>/FAILED`` (first line: the SLURM
  state and how to resume, the format of :func:`prefexp.launch.write_failure`) and returns NaN,
  like a job whose training raised (prefexp.train), so the sweep summary lists it as failed.
* **Resubmitting resumes**: the same command with the same ``hydra.sweep.dir`` reruns each job in
  its old dir, where ``trainer.resume=auto`` continues from the last checkpoint; the FAILED marker
  of the earlier attempt is moved to ``FAILED.previous`` when the job starts again, so a job that
  then finishes is reported ok.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as PluginSlurmLauncher
from omegaconf import OmegaConf, open_dict

from .sweep_jobs import FAILED

log = logging.getLogger(__name__)


def resume_hint(job_id: str, state: str) -> str:
    return (f"SlurmJobEnded: SLURM job {job_id} ended {state} before finishing (scancel, preemption, time limit "
            "or node failure); rerun the same command with the same hydra.sweep.dir to resume it from its last "
            "checkpoint")


class SlurmLauncher(PluginSlurmLauncher):
    def _sweep_config(self, overrides: Sequence[str], job_num: int):
        """The job's composed config, as the plugin's ``__call__`` builds it inside the job."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config.hydra.job):
            config.hydra.job.num = job_num
        return config

    def _job_dir(self, config) -> Path:
        """``hydra.sweep.dir / hydra.sweep.subdir``, resolved as Hydra's ``run_job`` does."""
        previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(config)
        try:
            return Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(config, "hydra.sweep.subdir"))
        finally:
            HydraConfig.instance().cfg = previous

    def __call__(self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: dict) -> JobReturn:
        """Inside the SLURM job: set aside the FAILED marker of an earlier attempt, then run."""
        from hydra.core.singleton import Singleton

        Singleton.set_state(singleton_state)
        stale = self._job_dir(self._sweep_config(sweep_overrides, job_num)) / FAILED
        if stale.exists():
            stale.replace(stale.with_name(FAILED + ".previous"))
        return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)

    def _ended_by_slurm(self, job, overrides: Sequence[str], job_num: int, exc: Exception) -> JobReturn:
        """The JobReturn of a job that produced no result: FAILED in its dir, NaN as its value."""
        config = self._sweep_config(overrides, job_num)
        job_dir = self._job_dir(config)
        hydra_dir = job_dir / ".hydra"
        if not (hydra_dir / "overrides.yaml").exists():  # never started (cancelled while pending)
            hydra_dir.mkdir(parents=True, exist_ok=True)
            task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
            OmegaConf.save(task_cfg, hydra_dir / "config.yaml")
            OmegaConf.save(OmegaConf.create({"hydra": config.hydra}), hydra_dir / "hydra.yaml")
            OmegaConf.save(OmegaConf.create(list(overrides)), hydra_dir / "overrides.yaml")
        marker = job_dir / FAILED
        if not marker.exists():  # a job whose training raised wrote its own (with the traceback)
            marker.write_text(resume_hint(job.job_id, job.state) + "\n\n" + f"{type(exc).__name__}: {exc}\n")
        log.error("job %d (%s) ended without a result: %s", job_num, " ".join(filter_overrides(overrides)),
                  marker.read_text().splitlines()[0])
        return JobReturn(overrides=list(overrides), cfg=config, hydra_cfg=config, working_dir=str(job_dir),
                         task_name=str(config.hydra.job.name), status=JobStatus.COMPLETED,
                         _return_value=math.nan)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit
        from hydra.core.singleton import Singleton
        from submitit.core.utils import FailedJobError, UncompletedJobError

        assert self.config is not None and len(job_overrides) > 0
        init_params: dict[str, Any] = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init_params["slurm_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
                                      if k not in {"submitit_folder", "max_num_timeout"}})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))

        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))
        results = []
        for job, (overrides, _, idx, _, _) in zip(jobs, job_params):
            try:
                results.append(job.results()[0])
            except (UncompletedJobError, FailedJobError) as exc:
                results.append(self._ended_by_slurm(job, overrides, idx, exc))
        return results
