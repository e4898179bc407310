"""prefexp's W&B callback: transformers' WandbCallback with one history row per logging step,
at ``_step`` = the global step, and the Trainer's arguments under one config key.

transformers' own callback (``report_to=["wandb"]``) adds its ~250 TrainingArguments and the model
config as top-level config keys, next to prefexp's composed config; here they go under
``trainer_args`` and ``model_config``. It also logs each step with an implicit, auto-incremented
``_step`` as soon as its ``on_log`` runs, before prefexp's callbacks have added their keys (peak
memory, throughput) to the same logs, so they used to make rows of their own. This callback is
added last (``pipeline.trainer_setup``), sees the complete logs, and logs them through
``logger.log_at_step``: held-out generations logged at an evaluation of the same step join that
row, and a resumed run continues after the steps already on disk.

A run killed with SIGKILL loses what W&B's service still buffered (wandb 0.31 offline: the
killed segment's file held only its 7-byte header). On resume the steps up to the checkpoint that
are in ``metrics.jsonl`` but in no W&B file are logged again from there, so the history has every
logging step once.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

from transformers.integrations import WandbCallback
from transformers.integrations.integration_utils import rewrite_logs

from ..tracking.run import last_logged_step, log_at_step

log = logging.getLogger(__name__)
# the Trainer's end-of-training figures: W&B summary, not history (as transformers' callback)
_SUMMARY_ONLY = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")


class PrefexpWandbCallback(WandbCallback):
    def __init__(self, metrics_file: Optional[Path] = None):
        super().__init__()
        self.metrics_file = metrics_file  # metrics.jsonl: the backfill source on resume

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, **kwargs)
        if state.is_world_process_zero and state.global_step > 0 and self._wandb is not None:
            self._backfill(state.global_step)

    def _backfill(self, resumed_at: int) -> None:
        """Log the metrics.jsonl rows of steps after the last one on disk, up to the checkpoint."""
        if self.metrics_file is None or not self.metrics_file.is_file():
            return
        done = last_logged_step()
        rows = [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]
        missing = [r for r in rows if done < r.get("step", 0) <= resumed_at]
        for row in missing:
            step = row.pop("step")
            log_at_step({**rewrite_logs(row), "train/global_step": step}, step)
        if missing:
            log.info("W&B: %d logging step(s) up to step %d were not in the run's files (a killed run); "
                     "logged again from %s", len(missing), resumed_at, self.metrics_file)

    def setup(self, args, state, model, **kwargs):
        if self._wandb is None:
            return
        self._initialized = True
        if not state.is_world_process_zero or self._wandb.run is None:
            return  # prefexp.tracking opened the run on rank 0; nothing else starts one
        extra = {"trainer_args": args.to_dict()}
        config = getattr(model, "config", None)
        if config is not None:
            extra["model_config"] = config if isinstance(config, dict) else config.to_dict()
        try:
            extra["model/num_parameters"] = model.num_parameters()
        except AttributeError:
            pass
        self._wandb.config.update(extra, allow_val_change=True)
        self._wandb.define_metric("train/global_step")
        self._wandb.define_metric("*", step_metric="train/global_step", step_sync=True)

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if self._wandb is None or logs is None:
            return
        if not self._initialized:
            self.setup(args, state, model)
        if not state.is_world_process_zero or self._wandb.run is None:
            return
        for key in _SUMMARY_ONLY:
            if key in logs:
                self._wandb.run.summary[key] = logs[key]
        row = rewrite_logs({k: v for k, v in logs.items() if k not in _SUMMARY_ONLY})
        if row:
            log_at_step({**row, "train/global_step": state.global_step}, state.global_step)
