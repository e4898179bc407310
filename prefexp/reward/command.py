"""The exact ``python -m prefexp.reward ...`` line that rebuilds a run's reward scores.

For each group (``model``, ``dataset``, ``reward_model``) it picks the option file under ``conf/<group>/``
closest to the given typed config (fewest differing leaves) and appends ``group.key=value`` for
every leaf that still differs, then ``paths.cache_dir``. Composing ``conf/reward.yaml`` with the
result therefore gives back the same typed configs, hence the same cache keys, whatever
overlays (``experiment``, ``debug``, ``local``) the training run used.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..config import CONFIG_DIR
from ..config.schema import DatasetConfig, ModelConfig
from .hparams import RewardModelConfig

_PLAIN = re.compile(r"^[A-Za-z0-9_./@:+\-]+$")


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, name + "."))
        else:
            out[name] = value
    return out


def _as_container(obj: Any) -> dict:
    cfg = OmegaConf.structured(obj) if is_dataclass(obj) else obj
    return OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)  # type: ignore[return-value]


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in ("null", "true", "false"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"  # Hydra's quoted string


def group_overrides(group: str, node: Any, config_dir: Path = CONFIG_DIR) -> list[str]:
    """``[group=<closest option>, group.key=value, ...]`` reproducing the typed ``node``."""
    actual = _leaves(_as_container(node))
    best: tuple[int, str, list[str]] | None = None
    for path in sorted((config_dir / group).glob("*.yaml")):
        try:
            option = OmegaConf.load(path)
            if "defaults" in option:
                continue  # options with their own defaults list cannot be merged this simply
            merged = OmegaConf.merge(OmegaConf.structured(type(node)), option)
            base = _leaves(_as_container(merged))
        except Exception:  # noqa: BLE001 - an option that does not fit this schema is not a candidate
            continue
        diffs = [f"{group}.{k}={_value(v)}" for k, v in actual.items() if base.get(k) != v]
        if best is None or len(diffs) < best[0]:
            best = (len(diffs), path.stem, diffs)
    if best is None:
        raise FileNotFoundError(f"no usable option file in {config_dir / group}")
    return [f"{group}={best[1]}", *best[2]]


def reward_command(model: ModelConfig, dataset: DatasetConfig, hparams: RewardModelConfig,
                   cache_dir: str | Path) -> str:
    """The shell command that builds (and caches) the reward scores :func:`reward_margins` looks for."""
    args = [*group_overrides("model", model), *group_overrides("dataset", dataset),
            *group_overrides("reward_model", hparams), f"paths.cache_dir={_value(str(cache_dir))}"]
    return " ".join(["python -m prefexp.reward", *(shlex.quote(a) for a in args)])
