"""Structured config of ``python -m prefexp.reward`` (``conf/reward.yaml``), stored as ``reward_schema``.

It reuses the training config's ``model``, ``dataset`` and ``paths`` schemas, so the same group
options compose into both, and adds the ``reward_model`` group (:class:`RewardModelConfig`).
Unknown keys and wrong types fail at composition time; the semantic checks live in ``validate.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from ..config.schema import DatasetConfig, ModelConfig, PathsConfig
from .hparams import RewardModelConfig


@dataclass
class RewardConfig:
    model: ModelConfig = MISSING  # the base weights of the reward model (and its tokenizer)
    dataset: DatasetConfig = MISSING  # the pairs the reward model is trained on
    # the pairs to score; None (default) scores ``dataset``. Set with dataset@score_dataset=<option>
    score_dataset: Optional[DatasetConfig] = None
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    paths: PathsConfig = MISSING
    force: bool = False  # true: retrain the reward model and rescore even on a cache hit
    num_threads: Optional[int] = None  # torch CPU threads; None = torch's default


def register_reward_schema() -> None:
    ConfigStore.instance().store(name="reward_schema", node=RewardConfig)
