"""Checks of the inputs a config names (paths, numeric ranges, the device), before anything loads.

Each check appends one line per problem naming the key, its value and the fix, so ``validate``
reports them together in seconds; the same problems found later (a model path missing after a
24 s import, a gzip file read as text) used to end in tracebacks.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..config.schema import TrainConfig

DTYPES = ("float32", "bfloat16", "float16")
SEED_RANGE = (0, 2**32 - 1)  # what numpy's and torch's generators accept


def looks_like_path(value: str) -> bool:
    """A local path rather than a hub id (``org/name``: at most one slash, no leading ``/ . ~``)."""
    return value.startswith(("/", "./", "../", "~", "\\")) or value in (".", "..") or value.count("/") > 1


def model_dir_problem(key: str, value: str | None) -> str | None:
    """Why ``key=value`` is not a usable model: a missing path, a file, a folder without config.json."""
    if value is None or value == "sandbox":
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return f"{key}={value!r} is a directory without config.json, not a transformers model; pass the model's folder"
        return None
    if path.exists():
        return f"{key}={value!r} is a file; pass the model's folder (with config.json) or a hub name"
    if looks_like_path(value):
        return f"{key}={value!r} does not exist; pass an existing model folder or a hub name such as Qwen/Qwen2.5-0.5B"
    return None  # a hub id: resolved (or reported) by transformers


def _check_trainer(c: TrainConfig, errors: list[str]) -> None:
    t = c.trainer
    if not (math.isfinite(t.learning_rate) and t.learning_rate >= 0):  # 0: a frozen policy (evaluation only)
        errors.append(f"trainer.learning_rate={t.learning_rate} must be a finite number >= 0; pass e.g. trainer.learning_rate=5e-7")
    if not t.num_epochs > 0:
        errors.append(f"trainer.num_epochs={t.num_epochs} must be > 0")
    if not 0 <= t.warmup_ratio < 1:
        errors.append(f"trainer.warmup_ratio={t.warmup_ratio} is outside [0, 1) (a fraction of the steps)")
    if t.weight_decay < 0:
        errors.append(f"trainer.weight_decay={t.weight_decay} must be >= 0")
    if not t.max_grad_norm >= 0:
        errors.append(f"trainer.max_grad_norm={t.max_grad_norm} must be >= 0 (0 = no clipping)")
    for key in ("gradient_accumulation_steps", "logging_steps", "save_steps", "reference_batch_size"):
        value = getattr(t, key)
        if value < 1:
            errors.append(f"trainer.{key}={value} must be >= 1")
    p = t.probes
    for key, value in (("every_n_steps", p.every_n_steps), ("n_pairs", p.n_pairs),
                       ("batch_size", 1 if p.batch_size is None else p.batch_size)):
        if value < 1:
            errors.append(f"trainer.probes.{key}={value} must be >= 1 (trainer.probes.enabled=false turns probes off)")
    if t.precision == "fp16" and not _has_cuda():
        errors.append("trainer.precision=fp16 needs a CUDA GPU and none is visible; pass trainer.precision=bf16 "
                      "(CPU autocast) or trainer.precision=fp32")


def _has_cuda() -> bool:
    import torch  # only imported when fp16 is asked for

    return torch.cuda.is_available()


def _check_dataset(c: TrainConfig, errors: list[str]) -> None:
    from ..data.files import DataFileError, check_data_file

    d = c.dataset
    if d.source == "jsonl" and d.path:
        try:
            check_data_file(d.path)
        except DataFileError as exc:
            errors.append(str(exc))
    elif d.source == "hf" and d.path and looks_like_path(d.path) and not Path(d.path).expanduser().exists():
        errors.append(f"dataset.path={d.path!r} does not exist; pass an existing file or folder, or a hub name")
    if d.layout == "hh_rlhf" and d.source == "sandbox":
        errors.append("dataset.layout=hh_rlhf reads HH-RLHF transcripts (dataset=hh_rlhf); the sandbox has its own layout")
    if d.max_rows is not None and d.max_rows < 1:
        errors.append(f"dataset.max_rows={d.max_rows} must be >= 1 or null (all rows)")


def seed_problems(node: Any, prefix: str = "") -> list[str]:
    """Every ``*seed`` field of the config tree outside [0, 2**32 - 1]: numpy's generator refused
    ``seed=-1`` only after the data had loaded, in a traceback."""
    problems = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            problems.extend(seed_problems(value, f"{prefix}{f.name}."))
        elif f.name.endswith("seed") and isinstance(value, int) and not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
            problems.append(f"{prefix}{f.name}={value} is outside [0, 2**32 - 1] (what the random generators accept); "
                            f"pass e.g. {prefix}{f.name}=0")
    return problems


def check_inputs(c: TrainConfig, errors: list[str]) -> None:
    """Append a line to ``errors`` for each bad path, range or device setting of ``c``."""
    from ..data.chat_templates import chat_template_problem

    if c.model.dtype not in DTYPES:
        errors.append(f"model.dtype={c.model.dtype!r} is not one of {list(DTYPES)}")
    for key, value in (("model.name_or_path", c.model.name_or_path),
                       ("token_cleaning.base_model", c.token_cleaning.base_model if c.token_cleaning.enabled else None),
                       ("token_cleaning.reference_model",
                        c.token_cleaning.reference_model if c.token_cleaning.enabled else None)):
        problem = model_dir_problem(key, value)
        if problem:
            errors.append(problem)
    if c.model.chat_template is not None:
        problem = chat_template_problem(c.model.chat_template)
        if problem:
            errors.append(problem)
    _check_trainer(c, errors)
    _check_dataset(c, errors)
    errors.extend(seed_problems(c))


def _written_value(cfg: Any, key: str) -> str:
    """``key``'s value as written (an interpolation unresolved), '' when the path cannot be walked."""
    from omegaconf import OmegaConf

    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.replace("[", ".").replace("]", "").split("."):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return ""
    return repr(node) if isinstance(node, str) else str(node)


def interpolation_problem(cfg: Any, exc: Exception) -> str:
    """One line for an OmegaConf error met while resolving the config (a failed ``${...}``, a value
    of the wrong type): the key as written and OmegaConf's reason, secrets redacted (the reason
    quotes the resolved value, which may be an API key)."""
    from ..redact import redact

    key = getattr(exc, "full_key", None) or ""
    reason = redact(str(getattr(exc, "msg", None) or exc).splitlines()[0])
    written = _written_value(cfg, key) if key else ""
    where = f"{key}={written}" if key else "the config"
    return f"{where}: {reason}; pass a value of the key's type (interpolations resolve before validation)"


def accumulation_problem(c: TrainConfig, world_size: int, n_pairs: int) -> str | None:
    """One optimizer step must fit in the data: per_device_batch_size x gradient_accumulation_steps x
    ranks pairs. More (``gradient_accumulation_steps=100000000``) made every step eat the whole data
    set. Without accumulation a batch larger than the data is one short batch, as before (tiny runs).
    Checked once the pairs are loaded (their count is needed), before any model loads."""
    t = c.trainer
    per_step = t.per_device_batch_size * t.gradient_accumulation_steps * world_size
    if t.gradient_accumulation_steps == 1 or per_step <= n_pairs:
        return None
    fits = max(1, n_pairs // (t.per_device_batch_size * world_size))
    return (f"trainer.gradient_accumulation_steps={t.gradient_accumulation_steps}: one optimizer step needs "
            f"{t.per_device_batch_size} (trainer.per_device_batch_size) x {t.gradient_accumulation_steps} x "
            f"{world_size} (ranks) = {per_step} pairs, but the data has {n_pairs} training pairs; pass "
            f"trainer.gradient_accumulation_steps={fits}{' or less' if fits > 1 else ''}, or a smaller trainer.per_device_batch_size")
