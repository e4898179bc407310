"""Stage 8, fit: train, resuming from the newest checkpoint of this run dir (trainer.resume=auto)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..config.validate import Settings
from ..engine.artifacts import load_loss_state

log = logging.getLogger(__name__)


def fit(trainer, settings: Settings) -> None:
    from transformers.trainer_utils import get_last_checkpoint

    loss, output_dir = settings.loss, trainer.args.output_dir
    last = get_last_checkpoint(output_dir) if settings.config.trainer.resume == "auto" and Path(output_dir).is_dir() \
        else None
    if last:
        log.info("resuming from %s", last)
        if loss.is_stateful and not load_loss_state(loss, last):
            log.warning("%s holds no loss state: %s's running statistics restart from zero", last, settings.loss_name)
    trainer.train(resume_from_checkpoint=last)
