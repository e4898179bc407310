"""The policy's weights for one run: where they are, their tokenizer, how to load a copy.

Lazy on purpose: a dry run whose plan needs no model never builds the sandbox model or reads a
tokenizer. The first access fixes the process's threads and seeds, before anything loads.
"""
from __future__ import annotations

from functools import cached_property

from ..config.schema import TrainConfig
from ..engine.model_path import resolve_model_path


class ModelSource:
    def __init__(self, config: TrainConfig):
        self.config = config

    @cached_property
    def path(self) -> str:
        """The local folder (or hub id) of the initial weights = the reference model."""
        import torch
        from transformers import set_seed

        from ..engine.distributed import main_process_first

        if self.config.trainer.num_threads is not None:
            torch.set_num_threads(self.config.trainer.num_threads)
        set_seed(self.config.seed)
        with main_process_first():  # one rank builds a missing sandbox model, the others reuse it
            return resolve_model_path(self.config)

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        from ..engine.tokenize import ensure_chat_template

        tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=self.config.model.trust_remote_code)
        ensure_chat_template(tokenizer, self.config.model.chat_template)
        return tokenizer

    @property
    def dtype(self):
        import torch

        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.config.model.dtype]

    def load(self, path: str | None = None):
        """A fresh copy of the weights at ``path`` (default: the policy's), in the run's dtype."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path or self.path, dtype=self.dtype,
                                                    trust_remote_code=self.config.model.trust_remote_code)
