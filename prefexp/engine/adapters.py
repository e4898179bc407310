"""LoRA / QLoRA adapters (peft) on the policy: attach, count, merge.

The base weights stay frozen and are the reference: the reference log-probs are computed from the
base model folder before any adapter exists (``prefexp.engine.reference``, cached on disk and keyed
by the base weights' fingerprint), so training never runs a second model nor a reference forward.
A saved adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``) names its base in
``base_model_name_or_path``; ``AutoModelForCausalLM.from_pretrained(<folder>)`` loads base + adapter
when peft is installed, which is how the evaluation stage reads an adapter checkpoint.
"""
from __future__ import annotations

import json
import logging
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..config import layout
from ..config.schema import AdapterConfig

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
DTYPES = ("bfloat16", "float16", "float32")


@contextmanager
def peft_alias_warning_off():
    """peft 0.21 reads transformers' deprecated alias ``is_gradient_checkpointing`` (now
    ``is_activation_checkpointing``) whenever it wraps a model: a FutureWarning only peft can fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def uses_adapter(a: AdapterConfig) -> bool:
    return a.kind != "none"


def quantization_config(a: AdapterConfig):
    """transformers' BitsAndBytesConfig for ``adapter=qlora`` (None otherwise)."""
    if a.kind != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=a.quant_type,
                              bnb_4bit_use_double_quant=a.double_quant,
                              bnb_4bit_compute_dtype=getattr(torch, a.compute_dtype))


def lora_config(a: AdapterConfig, conv1d: bool = False):
    """``conv1d``: the model's projections are GPT-2 style Conv1D (weight stored [in, out]), which
    peft must know (fan_in_fan_out), or it corrects the flag itself with a warning."""
    from peft import LoraConfig, TaskType

    targets = a.target_modules
    if targets is not None and not isinstance(targets, str):
        targets = list(targets)
    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout,
                      target_modules=targets, bias="none", fan_in_fan_out=conv1d)


def attach_adapter(model, a: AdapterConfig, gradient_checkpointing: bool):
    """``model`` wrapped as a peft model with a fresh adapter (B = 0: the policy equals the base at
    step 0, so the first DPO loss is ln 2). Only adapter weights require grad."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if a.kind == "qlora":  # norms in fp32, inputs that require grad for checkpointing through frozen 4-bit layers
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:  # frozen embeddings: the checkpointed blocks still need an input with grad
        model.enable_input_require_grads()
    try:
        with peft_alias_warning_off():
            return get_peft_model(model, lora_config(a, conv1d=has_conv1d(model)))
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        from ..errors import InputError

        names = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name})
        raise InputError(f"adapter.target_modules={a.target_modules!r}: {exc}; module names of this model: "
                         f"{names}") from None


def has_conv1d(model) -> bool:
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) for m in model.modules())


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights count as their unpacked size."""
    trainable = total = 0
    for p in model.parameters():
        n = p.ds_numel if hasattr(p, "ds_numel") else p.numel()  # ZeRO-3 partitions: the full size
        if p.__class__.__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored byte
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def log_trainable_parameters(model) -> dict:
    trainable, total = parameter_counts(model)
    log.info("trainable parameters: %s of %s (%.4f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / max(1, total))
    return {"trainable_parameters": trainable, "total_parameters": total}


def merge_adapter_checkpoint(checkpoint: Path, base_path: str, dtype, trust_remote_code: bool = False) -> Path:
    """Turn ``checkpoint`` (an adapter folder) into a merged HF model folder.

    The base is reloaded in full precision from ``base_path`` (never the 4-bit one of QLoRA, whose
    rounding would be merged in), B A is added to its weights and the result saved over the
    checkpoint; the adapter files move to ``checkpoint/adapter``. Returns that adapter folder.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter_dir = checkpoint / "adapter"
    adapter_dir.mkdir(exist_ok=True)
    for name in ADAPTER_FILES:
        if (checkpoint / name).exists():
            shutil.move(str(checkpoint / name), str(adapter_dir / name))
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, trust_remote_code=trust_remote_code)
    with peft_alias_warning_off():
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(checkpoint))
    log.info("adapter merged into %s (adapter alone: %s)", checkpoint, adapter_dir)
    return adapter_dir


def record_adapter(checkpoint: Path, a: AdapterConfig, counts: dict) -> None:
    """Add what the checkpoint holds to its manifest.json: ``adapter`` (kind, rank, merged or not)."""
    path = checkpoint / layout.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["adapter"] = {"kind": a.kind, "r": a.r, "alpha": a.alpha, "merged": a.merge_on_save,
                           "adapter_dir": "adapter" if a.merge_on_save else ".", **counts}
    path.write_text(json.dumps(manifest, indent=2))


def save_adapter_extras(checkpoint: Path, a: AdapterConfig, model_source) -> None:
    """After the Trainer saved the adapter into ``checkpoint`` (rank 0): merge it when
    ``adapter.merge_on_save``, and record the adapter in the manifest. ``model_source`` is the
    run's ModelSource (base path, dtype, parameter counts)."""
    if a.merge_on_save:
        merge_adapter_checkpoint(checkpoint, model_source.path, model_source.dtype,
                                 model_source.config.model.trust_remote_code)
    record_adapter(checkpoint, a, getattr(model_source, "parameter_counts", {}))
