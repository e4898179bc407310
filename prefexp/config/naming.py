"""Run names: W&B name and sweep job dir (``0_mixdpo-tau0.5-s1``), W&B group = the sweep.

A name says what a dashboard or a shell glob needs at a glance: the config groups the job chose
on its command line (``dataset``, ``+study_arm``, ...), the loss, the router when it changes the
run (not ``threshold`` + ``route``, MixDPO's own routing), ``tau`` only where the loss or router
reads it, the curriculum when the job chose one, and the seed. Everything else the job overrode is
in ``.hydra/overrides.yaml`` and the W&B config, not in the name. Names hold only
``[A-Za-z0-9._-]``: no ``=``, ``,`` or brackets to quote in a shell.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .axes import router_is_used, tau_is_used

# groups that never change what a run learns, or that the name already says in its own way
_UNNAMED_GROUPS = {"loss", "router", "curriculum", "logger", "paths", "local", "hydra", "train_schema"}


def _override_keys(overrides: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for o in overrides:
        if "=" in o:
            key, value = o.split("=", 1)
            out.append((key.lstrip("+~"), value))
    return out


def safe_name(text: str) -> str:
    """Only ``[A-Za-z0-9._-]`` (others become ``_``), no leading dot or dash."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".-") or "run"


def run_name(config: Mapping[str, Any], choices: Mapping[str, Any], overrides: Sequence[str]) -> str:
    """``mixdpo-tau0.5-s1``, ``dpo-s0``, ``dpo_discard-dpo-discard-tau0.5-s2`` from the composed
    config (``loss``, ``router``, ``tau``, ``seed``, ``curriculum``), Hydra's group choices and the
    job's own overrides."""
    chosen = dict(_override_keys(overrides))
    parts = [str(choices[g]) for g in chosen if g in choices and g not in _UNNAMED_GROUPS and choices[g]]
    parts.append(str(choices.get("loss") or "loss"))
    router = config.get("router") or {}
    if router_is_used(dict(config)):
        if router.get("name") != "threshold":
            parts.append(str(router.get("name")))
        if router.get("on_selected", "route") != "route":
            parts.append(str(router.get("on_selected")))
    if tau_is_used(dict(config)) and config.get("tau") is not None:
        parts.append(f"tau{config['tau']}")
    if "curriculum" in chosen:
        order = str(choices.get("curriculum") or chosen["curriculum"])
        parts.append("nocurriculum" if order == "none" else order)
    if config.get("seed") is not None:
        parts.append(f"s{config['seed']}")
    return safe_name("-".join(parts))


def job_dir_name(*, _root_) -> str:
    """OmegaConf resolver ``${prefexp_job_name:}`` of ``hydra.sweep.subdir``: this job's run name."""
    from omegaconf import OmegaConf

    hydra = _root_.hydra
    config = {k: OmegaConf.to_container(_root_[k], resolve=True) if OmegaConf.is_config(_root_[k]) else _root_[k]
              for k in ("loss", "router", "tau", "seed") if k in _root_}
    return run_name(config, OmegaConf.to_container(hydra.runtime.choices), list(hydra.overrides.task))


def sweep_group(sweep_dir: str | Path) -> str:
    """One W&B group per sweep, unique to it: the dir's name (with its date when the name is a
    time) and a hash of its absolute path, so two sweeps in dirs named ``sweep`` stay apart."""
    path = Path(sweep_dir).absolute()
    name = f"{path.parent.name}_{path.name}" if re.fullmatch(r"\d{2}-\d{2}-\d{2}", path.name) else path.name
    return f"{name}-{hashlib.sha256(str(path).encode()).hexdigest()[:6]}"
