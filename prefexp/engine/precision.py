"""Mixed precision the way the Trainer and DeepSpeed do it: float32 master weights and optimizer
state, bf16 / fp16 compute.

AdamW on bf16 weights loses every update smaller than half a bf16 ulp (2^-9 of the weight): at
lr 1e-6 an update of about 1e-6 on a weight of 0.02 (ulp 1.2e-4) rounds away, and on the tiny
GPT-2 only 1 % of the weights moved after 10 steps (99.99 % in float32). So the weights the
optimizer updates are never bf16:

- full fine-tuning with the plain Trainer: the policy is loaded in float32 whatever
  ``model.dtype`` says; ``trainer.precision=bf16`` (TrainingArguments(bf16=True)) computes under
  bf16 autocast, as the HF Trainer's mixed precision expects;
- DeepSpeed with ZeRO (stage >= 1) or with bf16 / fp16 on: the policy is loaded in
  ``model.dtype``; DeepSpeed itself keeps float32 master copies (ZeRO's fp32 partitions, its
  bf16 / fp16 optimizer) and casts the module to the compute dtype;
- LoRA / QLoRA: the base is frozen and stays in ``model.dtype`` (4 bits for QLoRA); peft creates
  the adapter weights in float32 (``autocast_adapter_dtype``).

Frozen copies (the reference model, a token-cleaning model) always load in ``model.dtype``.
"""
from __future__ import annotations

import logging
from typing import Optional

from ..config.schema import TrainConfig

log = logging.getLogger(__name__)


def deepspeed_keeps_master_weights(enabled: bool, ds_config: dict, precision: str) -> bool:
    """True when DeepSpeed holds float32 master copies of the trained weights itself: any ZeRO
    stage (fp32 partitions of the optimizer's parameters) or stage 0 with bf16 / fp16 on (its
    mixed-precision optimizer). Stage 0 in fp32 runs the torch optimizer on the module's own
    parameters, which must then be float32."""
    if not enabled:
        return False
    stage = (ds_config.get("zero_optimization") or {}).get("stage") or 0
    return stage >= 1 or precision in ("bf16", "fp16")


def policy_dtype(c: TrainConfig) -> str:
    """The dtype the policy's weights are loaded in (see the module docstring)."""
    if c.adapter.kind != "none":
        return c.model.dtype
    if deepspeed_keeps_master_weights(c.deepspeed.enabled, c.deepspeed.config, c.trainer.precision):
        return c.model.dtype
    return "float32"


def describe_policy_precision(c: TrainConfig) -> str:
    """One log line: where the master weights live and what computes in which dtype."""
    compute = {"fp32": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[c.trainer.precision]
    if c.adapter.kind != "none":
        return (f"precision: frozen base in {c.model.dtype}, adapter weights and their optimizer state in "
                f"float32, compute {compute}")
    if deepspeed_keeps_master_weights(c.deepspeed.enabled, c.deepspeed.config, c.trainer.precision):
        return (f"precision: policy loaded in {c.model.dtype}; DeepSpeed keeps the float32 master weights "
                f"and optimizer state, compute {compute}")
    moved = "" if c.model.dtype == "float32" else f" (model.dtype={c.model.dtype} applies to the frozen reference)"
    return f"precision: policy master weights and optimizer state in float32{moved}, compute {compute}"


def tf32_argument(tf32: Optional[bool]) -> Optional[bool]:
    """``TrainingArguments(tf32=...)`` for ``trainer.tf32``: None leaves torch's default; True
    needs an Ampere+ CUDA GPU (transformers raises otherwise), so without one it is skipped
    with a log line (a CPU run of a GPU config stays valid)."""
    if not tf32:
        return tf32
    from transformers.utils import is_torch_tf32_available

    if is_torch_tf32_available():
        return True
    log.info("trainer.tf32=true: no Ampere or newer CUDA GPU here, TF32 stays off")
    return None
