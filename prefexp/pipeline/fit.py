"""Stage 8, fit: train, resuming from the newest complete checkpoint of this run dir
(trainer.resume=auto); SIGTERM / SIGINT save the current step and stop (engine/preemption.py)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..config.settings import Settings
from ..engine import distributed
from ..engine.artifacts import load_loss_state
from ..engine.checkpoints import newest_complete_checkpoint, set_aside_incomplete
from ..engine.preemption import Preempted, PreemptionCallback, PreemptionFlag

log = logging.getLogger(__name__)


def resume_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint; rank 0 first sets aside (renames) every incomplete one."""
    with distributed.main_process_first():
        if distributed.is_main_process() and Path(output_dir).is_dir():
            set_aside_incomplete(output_dir)
    return newest_complete_checkpoint(output_dir)


def fit(trainer, settings: Settings) -> None:
    """Raises Preempted (after its checkpoint is saved) when a signal stopped the training."""
    loss, output_dir = settings.loss, trainer.args.output_dir
    last = resume_checkpoint(output_dir) if settings.config.trainer.resume == "auto" else None
    if last:
        log.info("resuming from %s", last)
        if loss.is_stateful and not load_loss_state(loss, last):
            log.warning("%s holds no loss state: %s's running statistics restart from zero", last, settings.loss_name)
    flag = PreemptionFlag().install()
    stop = PreemptionCallback(flag)
    trainer.add_callback(stop)
    try:
        trainer.train(resume_from_checkpoint=str(last) if last else None)
    finally:
        flag.restore()
        if trainer.nonfinite.mode == "skip" and trainer.is_world_process_zero():
            trainer.nonfinite.write_summary(Path(output_dir).parent)
    if stop.stopped_at is not None:
        raise Preempted(flag.signum, stop.stopped_at, str(newest_complete_checkpoint(output_dir)))
