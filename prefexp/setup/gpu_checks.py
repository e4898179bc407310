"""Checks of the GPU-only settings: ``model.attn_implementation`` (and ``trainer.tf32``, whose
type the schema already checks: without an Ampere+ GPU it is skipped, not refused).

``flash_attention_2`` is refused here, in seconds, when it cannot run: transformers would fail
only at ``from_pretrained``, after the data and the reference pass.
"""
from __future__ import annotations

import importlib.util

from ..config.schema import TrainConfig

ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")  # or null: transformers' default


def attn_implementation_problems(c: TrainConfig) -> list[str]:
    attn = c.model.attn_implementation
    if attn is None:
        return []
    if attn not in ATTN_IMPLEMENTATIONS:
        return [f"model.attn_implementation={attn!r} is not one of {list(ATTN_IMPLEMENTATIONS)} or null "
                "(transformers' default)"]
    if attn != "flash_attention_2":
        return []
    import torch

    if not torch.cuda.is_available():
        return ["model.attn_implementation=flash_attention_2 needs a CUDA GPU and none is visible; "
                "pass model.attn_implementation=sdpa"]
    if importlib.util.find_spec("flash_attn") is None:
        return ["model.attn_implementation=flash_attention_2 needs the flash_attn package, which is not "
                "installed; pip install flash-attn --no-build-isolation, or pass model.attn_implementation=sdpa"]
    from ..engine.precision import policy_dtype

    if c.trainer.precision == "fp32" and "float32" in (c.model.dtype, policy_dtype(c)):
        return [f"model.attn_implementation=flash_attention_2 computes in bf16 / fp16 only and trainer.precision=fp32 "
                "runs float32 weights without autocast; pass trainer.precision=bf16 (or model.attn_implementation=sdpa)"]
    return []
