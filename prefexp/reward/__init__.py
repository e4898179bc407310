"""Reward models: a Bradley-Terry reward model per (base weights, data, recipe), cached scores.

Importing this package registers ``reward_schema`` (the schema of ``conf/reward.yaml``).
CLI: ``python -m prefexp.reward model=<option> dataset=<option>``; library: :func:`reward_margins`.
"""
from .hparams import RewardModelConfig  # first: no project imports (see hparams.py)
from .schema import RewardConfig, register_reward_schema

register_reward_schema()

from .cache import RewardScoresMissing, cached_reward_scores, ensure_reward_model, reward_margins  # noqa: E402
from .command import reward_command  # noqa: E402

__all__ = [
    "RewardConfig",
    "RewardModelConfig",
    "RewardScoresMissing",
    "cached_reward_scores",
    "ensure_reward_model",
    "reward_command",
    "reward_margins",
]
