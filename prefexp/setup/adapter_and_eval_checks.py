"""Semantic checks of the ``adapter`` group and the evaluation-during-training keys
(``dataset.eval_fraction`` / ``eval_split``, ``trainer.eval_*`` / ``generation_*``).

Each returns one message per problem naming the key, the value and the fix; ``validate`` collects
them with the rest. Nothing heavy loads here: CUDA and bitsandbytes are only probed for qlora.
"""
from __future__ import annotations

import importlib.util

from ..config.schema import TrainConfig

ADAPTER_KINDS = ("none", "lora", "qlora")
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


def adapter_problems(c: TrainConfig) -> list[str]:
    a, errors = c.adapter, []
    if a.kind not in ADAPTER_KINDS:
        return [f"adapter.kind={a.kind!r} is not one of {list(ADAPTER_KINDS)}; pick adapter=none|lora|qlora"]
    if a.kind == "none":
        return []
    if a.r < 1:
        errors.append(f"adapter.r={a.r} must be >= 1 (the LoRA rank, e.g. adapter.r=16)")
    if not a.alpha > 0:
        errors.append(f"adapter.alpha={a.alpha} must be > 0 (the update is scaled by alpha / r, e.g. adapter.alpha=32)")
    if not 0 <= a.dropout < 1:
        errors.append(f"adapter.dropout={a.dropout} is outside [0, 1)")
    targets = a.target_modules
    if not (targets is None or isinstance(targets, str)
            or (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets))):
        errors.append(f"adapter.target_modules={targets!r} must be null (peft's default for the architecture), "
                      "'all-linear' or a list of module names, e.g. adapter.target_modules=[q_proj,v_proj]")
    if a.kind == "qlora":
        errors.extend(_qlora_problems(c))
    return errors


def _qlora_problems(c: TrainConfig) -> list[str]:
    a, errors = c.adapter, []
    if a.quant_type not in QUANT_TYPES:
        errors.append(f"adapter.quant_type={a.quant_type!r} is not one of {list(QUANT_TYPES)}")
    if a.compute_dtype not in COMPUTE_DTYPES:
        errors.append(f"adapter.compute_dtype={a.compute_dtype!r} is not one of {list(COMPUTE_DTYPES)}")
    import torch

    if not torch.cuda.is_available():
        errors.append("adapter=qlora needs a CUDA GPU (bitsandbytes 4-bit weights) and this machine has none; "
                      "use adapter=lora here")
    elif importlib.util.find_spec("bitsandbytes") is None:
        errors.append("adapter=qlora needs bitsandbytes, which is not installed; pip install -e '.[qlora]'")
    return errors


def heldout_problems(c: TrainConfig) -> list[str]:
    d, t, errors = c.dataset, c.trainer, []
    if not 0 <= d.eval_fraction < 1:
        errors.append(f"dataset.eval_fraction={d.eval_fraction} is outside [0, 1); e.g. dataset.eval_fraction=0.05")
    if d.eval_split is not None and d.eval_fraction > 0:
        errors.append(f"dataset.eval_split={d.eval_split!r} and dataset.eval_fraction={d.eval_fraction} both hold "
                      "out pairs; set one (dataset.eval_fraction=0 or dataset.eval_split=null)")
    if d.eval_split is not None and d.source != "hf":
        errors.append(f"dataset.eval_split={d.eval_split!r} needs dataset.source=hf (a hub or local dataset with "
                      f"splits), not {d.source}; use dataset.eval_fraction instead")
    for key in ("eval_steps", "eval_batch_size", "generation_prompts", "generation_max_new_tokens"):
        if getattr(t, key) < 1:
            errors.append(f"trainer.{key}={getattr(t, key)} must be >= 1")
    if t.generation_steps is not None and t.generation_steps < 1:
        errors.append(f"trainer.generation_steps={t.generation_steps} must be >= 1, or null (no generations)")
    if t.generation_steps is not None and d.eval_split is None and d.eval_fraction == 0:
        errors.append(f"trainer.generation_steps={t.generation_steps} generates from held-out prompts and there "
                      "are none; hold some out with dataset.eval_fraction=0.05 (or dataset.eval_split=...)")
    return errors
