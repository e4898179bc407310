"""The reference pass under ZeRO-3: the weights partitioned over the ranks as for training.

A model that needs ZeRO-3 to fit cannot be loaded whole on each rank, so under ``deepspeed=zero3``
(and ``zero3_offload``) the reference model is built the way the Trainer builds the policy:

1. the training's DeepSpeed config, turned into an inference one (:func:`inference_config`: no
   optimizer, batch keys of one micro-batch, "auto"s filled from the model's hidden size, gathered
   weights released after each module), is registered with ``HfDeepSpeedConfig`` so that
   ``from_config`` constructs the model inside ``deepspeed.zero.Init``: each module's parameters
   are partitioned as soon as they exist;
2. the weights are copied in module by module (:func:`load_partitioned_weights`): rank 0 reads
   that module's tensors from the safetensors files with plain reads (no mmap, whose touched pages
   would count as rank 0 holding the whole checkpoint), ``GatheredParameters(modifier_rank=0)``
   broadcasts them and re-partitions. (``from_pretrained`` under ZeRO-3 maps the full state dict
   on rank 0; it is the fallback for hub ids and ``.bin`` checkpoints.)
3. ``deepspeed.initialize`` without an optimizer wraps it in ZeRO-3's parameter offload hooks,
   which gather each module's weights just before its forward and release them after it, as in
   TRL's ``prepare_deepspeed`` for its reference model.

Each rank still scores its own shard of the examples (``examples[r::N]``, as the unsharded path
does): under ZeRO-3 every rank must run the *same number* of forwards (each one gathers every
module's weights from all ranks), not the same examples, so ranks with fewer batches run one
dummy forward per missing batch (through the same log-prob path: the fused head gathers its
weight once per forward, after the model's own modules). The numbers equal the unsharded pass (same weights, same
autocast; only the reduction order inside the gathered matmuls may differ).
"""
from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Zero3Sharding:
    """What the reference pass needs to partition the reference model like the policy."""

    ds_config: dict[str, Any]  # the training's resolved DeepSpeed JSON (zero_optimization.stage == 3)
    dtype: str  # model.dtype: float32 | bfloat16 | float16
    trust_remote_code: bool = False


def zero3_sharding(enabled: bool, ds_config: dict, dtype: str, trust_remote_code: bool) -> Zero3Sharding | None:
    """A :class:`Zero3Sharding` when DeepSpeed runs ZeRO stage 3, else None (ZeRO-2, DDP: unsharded pass)."""
    stage = (ds_config.get("zero_optimization") or {}).get("stage", 0) if enabled else 0
    return Zero3Sharding(dict(ds_config), dtype, trust_remote_code) if stage == 3 else None


def inference_config(training: dict, hidden_size: int | None, world: int, dtype: str) -> dict:
    """DeepSpeed JSON for a forward-only ZeRO-3 engine with the training's partitioning.

    Kept from training: ``zero_optimization`` (stage 3, ``offload_param``). Changed: no
    optimizer or scheduler (nothing to step), one micro-batch per rank (the batch keys only feed
    DeepSpeed's consistency check), bf16 / fp16 "enabled" follow the weights' dtype (so
    ``zero.Init`` keeps them in ``model.dtype`` and the numbers equal the unsharded pass), and
    gathered weights are never kept for reuse (prefetch 0, reuse distance 0): no rank ever holds
    more than the modules running now. The fills for "auto" are transformers' own
    (``trainer_config_finalize``).
    """
    config = copy.deepcopy(training)
    for key in ("optimizer", "scheduler", "train_batch_size", "gradient_accumulation_steps",
                "train_micro_batch_size_per_gpu", "gradient_clipping"):
        config.pop(key, None)
    config.update(train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=1, train_batch_size=world)
    config["bf16"] = {"enabled": dtype == "bfloat16"}
    config["fp16"] = {"enabled": dtype == "float16"}
    zero = config.setdefault("zero_optimization", {})
    zero.pop("offload_optimizer", None)
    h = hidden_size or 4096  # no hidden size: DeepSpeed's defaults' order of magnitude
    zero.update(stage=3, reduce_bucket_size=h * h, stage3_prefetch_bucket_size=0,
                stage3_param_persistence_threshold=10 * h, stage3_max_reuse_distance=0,
                stage3_max_live_parameters=max(h * h, 10 ** 6))
    left = [k for k, v in _leaves(config) if v == "auto"]
    if left:
        raise ValueError(f"DeepSpeed config keys still 'auto' for the reference pass: {left}")
    return config


def _leaves(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def hidden_size_of(model_config) -> int | None:
    """The hidden size transformers fills DeepSpeed's "auto" bucket sizes from."""
    if getattr(model_config, "hidden_size", None):
        return int(model_config.hidden_size)
    sizes = getattr(model_config, "hidden_sizes", None)
    return int(max(sizes)) if sizes else None


def partitioned_reference_model(sharding: Zero3Sharding, model_dir: str, world: int):
    """The reference model inside a forward-only ZeRO-3 engine (its ``.module`` is the HF model)."""
    import deepspeed
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[sharding.dtype]
    model_config = AutoConfig.from_pretrained(model_dir, trust_remote_code=sharding.trust_remote_code)
    config = inference_config(sharding.ds_config, hidden_size_of(model_config), world, sharding.dtype)
    files = sorted(Path(model_dir).glob("*.safetensors")) if Path(model_dir).is_dir() else []
    hf_ds = HfDeepSpeedConfig(config)  # while alive, transformers builds models inside zero.Init  # noqa: F841
    try:
        if files:
            model = AutoModelForCausalLM.from_config(model_config, dtype=dtype,
                                                     trust_remote_code=sharding.trust_remote_code)
            load_partitioned_weights(model, files)
        else:
            log.warning("reference pass under ZeRO-3: %s has no local safetensors files; from_pretrained "
                        "reads the whole checkpoint on rank 0", model_dir)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype,
                                                         trust_remote_code=sharding.trust_remote_code)
    finally:
        unset_hf_deepspeed_config()  # the Trainer's TrainingArguments(deepspeed=...) registers its own later
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine


def load_partitioned_weights(model, files: Sequence[Path]) -> None:
    """Copy the checkpoint into a ZeRO-3-partitioned model, one module at a time.

    Rank 0 reads each module's tensors (plain reads of their byte ranges); the other ranks only
    receive them through the broadcast of ``GatheredParameters(modifier_rank=0)``. Persistent
    buffers (never partitioned) are read by every rank. A parameter missing from the checkpoint
    fails unless it is tied to one already loaded (``lm_head`` = ``embed_tokens``).
    """
    import deepspeed
    import torch
    import torch.distributed as dist

    index = SafetensorsIndex(files)
    prefix_model = getattr(model, "base_model_prefix", "")
    reader = dist.get_rank() == 0
    loaded: set[int] = set()
    missing: list[str] = []

    def key_of(name: str) -> str | None:
        if name in index:
            return name
        short = name.removeprefix(prefix_model + ".")  # a base-model checkpoint inside a *ForCausalLM
        return short if short in index else None

    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        params = {n: p for n, p in module.named_parameters(recurse=False) if id(p) not in loaded}
        keyed = {n: key_of(prefix + n) for n in params}
        missing += [prefix + n for n, k in keyed.items() if k is None]
        present = [n for n, k in keyed.items() if k is not None]
        if present:
            with deepspeed.zero.GatheredParameters([params[n] for n in present], modifier_rank=0):
                if reader:
                    with torch.no_grad():
                        for n in present:
                            params[n].data.copy_(index.read(keyed[n]))
            loaded.update(id(params[n]) for n in present)
        for n, buf in module.named_buffers(recurse=False):
            key = key_of(prefix + n)
            if key is not None and buf is not None:
                with torch.no_grad():
                    buf.copy_(index.read(key))
    if missing:
        raise ValueError(f"reference pass under ZeRO-3: weights missing from {files[0].parent}: {missing[:5]}")


_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
           "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


class SafetensorsIndex:
    """Tensor name -> (file, dtype, shape, byte range) over the safetensors files of a model dir;
    :meth:`read` reads one tensor with a plain read (the format: an 8-byte little-endian header
    length, a JSON header, then the raw bytes)."""

    def __init__(self, files: Sequence[Path]):
        self.entries: dict[str, tuple[Path, int, dict]] = {}
        for f in files:
            with f.open("rb") as fh:
                length = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(length))
            header.pop("__metadata__", None)
            for name, entry in header.items():
                self.entries[name] = (f, 8 + length, entry)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def read(self, name: str):
        import torch

        f, base, entry = self.entries[name]
        start, end = entry["data_offsets"]
        raw = torch.empty(end - start, dtype=torch.uint8)
        with f.open("rb") as fh:
            fh.seek(base + start)
            if end > start and fh.readinto(memoryview(raw.numpy())) != end - start:
                raise ValueError(f"{f}: tensor {name} is truncated")
        return raw.view(getattr(torch, _DTYPES[entry["dtype"]])).reshape(entry["shape"])


def zero3_shard_logps(sharding: Zero3Sharding, model_dir: str, examples: Sequence[dict], rank: int, world: int,
                      pad_token_id: int, batch_size: int, precision: str) -> dict[int, tuple[float, float]]:
    """This rank's shard ``examples[rank::world]`` scored by the partitioned reference model.
    Collective: every rank of the launch calls it with the same ``examples``."""
    import torch

    from .batching import PairCollator
    from .logps import forward_logps
    from .reference import AUTOCAST, compute_reference_logps

    engine = partitioned_reference_model(sharding, model_dir, world)
    model = engine.module
    shard = list(examples)[rank::world]
    values = compute_reference_logps(model, shard, pad_token_id, batch_size, precision) if shard else {}
    most = math.ceil(math.ceil(len(examples) / world) / batch_size)  # batches of the largest shard
    missing = most - math.ceil(len(shard) / batch_size)
    device = next(model.parameters()).device
    dummy = {"index": -1, "prompt_ids": [pad_token_id], "chosen_ids": [pad_token_id], "rejected_ids": [pad_token_id]}
    batch = {k: v.to(device) for k, v in PairCollator(pad_token_id)([dummy]).items()}
    with torch.no_grad(), torch.autocast(device.type, dtype=AUTOCAST.get(precision, torch.float32),
                                         enabled=precision in AUTOCAST):
        for _ in range(missing):  # match the other ranks' gathers: the model's modules, then the fused head's
            forward_logps(model, batch)
    engine.destroy()
    del engine, model
    return values
