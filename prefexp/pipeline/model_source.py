"""The policy's weights for one run: where they are, their tokenizer, how to load a copy.

Lazy on purpose: a dry run whose plan needs no model never builds the sandbox model or reads a
tokenizer. The first access fixes the process's threads and seeds, before anything loads.
With ``adapter=qlora`` the base (policy and reference alike) is loaded in 4 bits, so the
reference is exactly the policy with its adapter off; ``load_policy`` adds the adapter.
"""
from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

from ..config.schema import TrainConfig
from ..engine.adapters import attach_adapter, log_trainable_parameters, quantization_config, uses_adapter
from ..engine.model_path import resolve_model_path
from ..engine.precision import describe_policy_precision, policy_dtype

log = logging.getLogger(__name__)


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class ModelSource:
    def __init__(self, config: TrainConfig):
        self.config = config

    @cached_property
    def path(self) -> str:
        """The local folder (or hub id) of the initial weights = the reference model."""
        import torch
        from transformers import set_seed

        from ..engine.distributed import cache_writers_first

        if self.config.trainer.num_threads is not None:
            torch.set_num_threads(self.config.trainer.num_threads)
        set_seed(self.config.seed)
        with cache_writers_first():  # one rank (per node, on a node-local cache) builds a missing sandbox model
            path = resolve_model_path(self.config)
        # a local folder as an absolute path: adapter checkpoints name their base by this string
        return str(Path(path).resolve()) if Path(path).is_dir() else path

    @property
    def reference_cache_dir(self) -> Path:
        """Where reference log-probs are cached: a 4-bit base has its own (its log-probs differ)."""
        root, a = Path(self.config.paths.cache_dir), self.config.adapter
        if a.kind != "qlora":
            return root
        return root / f"qlora-{a.quant_type}{'-dq' if a.double_quant else ''}-{a.compute_dtype}"

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        from ..engine.tokenize import ensure_chat_template

        tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=self.config.model.trust_remote_code)
        ensure_chat_template(tokenizer, self.config.model.chat_template)
        return tokenizer

    @property
    def dtype(self):
        """``model.dtype`` as a torch dtype: the dtype of frozen copies (reference, adapter base)."""
        return torch_dtype(self.config.model.dtype)

    def load(self, path: str | None = None, dtype: str | None = None):
        """A fresh copy of the weights at ``path`` (default: the policy's), in ``dtype`` (default
        ``model.dtype``) with ``model.attn_implementation``; the policy's own weights in 4 bits
        with ``adapter=qlora``."""
        from transformers import AutoModelForCausalLM

        kwargs = {}
        quantization = quantization_config(self.config.adapter) if path in (None, self.path) else None
        if quantization is not None:
            from ..engine.distributed import local_device

            kwargs = {"quantization_config": quantization, "device_map": {"": local_device()}}
        if self.config.model.attn_implementation is not None:
            kwargs["attn_implementation"] = self.config.model.attn_implementation
        return AutoModelForCausalLM.from_pretrained(path or self.path, dtype=torch_dtype(dtype or self.config.model.dtype),
                                                    trust_remote_code=self.config.model.trust_remote_code, **kwargs)

    def load_policy(self, prepare=None):
        """The model to train: the base (``prepare(model)`` applied, e.g. dropout off) plus a fresh
        adapter when ``adapter`` is lora or qlora, its trained weights in float32 unless DeepSpeed
        keeps the master copy (engine/precision.py). Logs the trainable-parameter count."""
        log.info(describe_policy_precision(self.config))
        policy = self.load(dtype=policy_dtype(self.config))
        if prepare is not None:
            prepare(policy)
        if uses_adapter(self.config.adapter):
            policy = attach_adapter(policy, self.config.adapter, self.config.trainer.gradient_checkpointing)
        self.parameter_counts = log_trainable_parameters(policy)
        return policy
