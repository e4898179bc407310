"""The reward-model training recipe and the part of it that keys a trained reward model.

``RewardModelConfig`` (the schema of the ``reward_model`` config group) lives in
``prefexp.config.schema`` with the other schemas, so the training config can hold it without an
import cycle; it is re-exported here.
"""
from __future__ import annotations

from dataclasses import asdict

from ..config.schema import RewardModelConfig  # defined with the other schemas; re-exported here

# Fields that change how a trained reward model is used or logged, not the model itself: they stay
# out of the cache key, so changing them never retrains.
NOT_IN_KEY = ("score_batch_size", "logging_steps", "build_if_missing")


def key_hparams(hparams: RewardModelConfig) -> dict:
    """The hyperparameters that identify a trained reward model (everything but :data:`NOT_IN_KEY`)."""
    return {k: v for k, v in asdict(hparams).items() if k not in NOT_IN_KEY}
