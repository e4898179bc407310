"""Validate a composed ``conf/reward.yaml`` once, before any model loads; every problem in one message."""
from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from ..config.schema import DatasetConfig
from ..config.schema import PRECISIONS, SOURCES
from ..config.settings import ConfigError
from .hparams import RewardModelConfig
from .schema import RewardConfig

DTYPES = ("float32", "bfloat16", "float16")


def _check_dataset(key: str, d: Optional[DatasetConfig], errors: list[str]) -> None:
    if d is None:
        return
    if d.source not in SOURCES:
        errors.append(f"{key}.source={d.source!r} is not one of {list(SOURCES)}")
    if d.source in ("hf", "jsonl") and not d.path:
        errors.append(f"{key}.path is required for {key}.source={d.source}; pass {key}.path=<file or hub name>")
    if d.on_invalid not in ("error", "skip"):
        errors.append(f"{key}.on_invalid={d.on_invalid!r} is not one of ['error', 'skip']")
    if d.max_prompt_length >= d.max_length:
        errors.append(f"{key}.max_prompt_length={d.max_prompt_length} must be < {key}.max_length={d.max_length}")


def check_hparams(h: RewardModelConfig, errors: list[str], key: str = "reward_model") -> None:
    """Append one line per bad reward-model hyperparameter to ``errors``."""
    from transformers import SchedulerType

    if not h.learning_rate > 0:
        errors.append(f"{key}.learning_rate={h.learning_rate} must be > 0; pass e.g. {key}.learning_rate=1e-5")
    if not h.num_epochs > 0:
        errors.append(f"{key}.num_epochs={h.num_epochs} must be > 0")
    if h.max_steps == 0 or h.max_steps < -1:
        errors.append(f"{key}.max_steps={h.max_steps} must be -1 (num_epochs over the data) or >= 1")
    for name in ("per_device_batch_size", "gradient_accumulation_steps", "score_batch_size", "logging_steps"):
        if getattr(h, name) < 1:
            errors.append(f"{key}.{name}={getattr(h, name)} must be >= 1")
    if not 0 <= h.warmup_ratio < 1:
        errors.append(f"{key}.warmup_ratio={h.warmup_ratio} is outside [0, 1)")
    if h.weight_decay < 0 or h.max_grad_norm < 0:
        errors.append(f"{key}.weight_decay={h.weight_decay} and {key}.max_grad_norm={h.max_grad_norm} must be >= 0")
    if h.precision not in PRECISIONS:
        errors.append(f"{key}.precision={h.precision!r} is not one of {list(PRECISIONS)}")
    if h.dtype not in DTYPES:
        errors.append(f"{key}.dtype={h.dtype!r} is not one of {list(DTYPES)}")
    schedulers = [s.value for s in SchedulerType]
    if h.lr_scheduler not in schedulers:
        errors.append(f"{key}.lr_scheduler={h.lr_scheduler!r} is not one of {schedulers}")


def validate_reward(cfg: DictConfig) -> RewardConfig:
    """Check ``cfg`` (composed ``conf/reward.yaml``) and return the typed config.

    Raises :class:`prefexp.config.settings.ConfigError` listing every problem, one per line.
    """
    job_cfg = cfg.copy()
    with open_dict(job_cfg):
        job_cfg.pop("hydra", None)  # present when composed with return_hydra_config
    c: RewardConfig = OmegaConf.to_object(job_cfg)  # type: ignore[assignment]
    errors: list[str] = []
    _check_dataset("dataset", c.dataset, errors)
    _check_dataset("score_dataset", c.score_dataset, errors)
    check_hparams(c.reward_model, errors)
    if c.num_threads is not None and c.num_threads < 1:
        errors.append(f"num_threads={c.num_threads} must be >= 1 or null")
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))
    return c
