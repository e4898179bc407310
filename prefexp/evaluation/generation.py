"""Answer generation: a chat request in, a string out, from one of two backends.

* ``HFBackend``: batched ``model.generate`` on CPU or GPU (left padding, requests grouped by
  sampling settings so MT-Bench's per-category temperatures share batches).
* ``prefexp.evaluation.vllm_backend.VLLMBackend``: an OpenAI-compatible vLLM server, which lives
  in its own environment because vLLM pins other transformers/torch versions than this project
  (imported only when chosen).

Benchmarks build ``GenRequest`` objects (``gen_request``, the module both backends import; it
imports neither) and never look at the backend behind them.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator, Optional

from .config import EvalConfigError, GenerationConfig
from .gen_request import GREEDY_BELOW, Backend, GenRequest

__all__ = ["GREEDY_BELOW", "Backend", "GenRequest", "HFBackend", "open_backend", "describe"]

log = logging.getLogger(__name__)


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class HFBackend:
    """Transformers ``generate`` with the checkpoint's own tokenizer and chat template."""

    name = "hf"

    def __init__(self, model_dir: str, settings: GenerationConfig, chat_template: Optional[str] = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = _pick_device(settings.device)
        self.settings = settings
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        if not self.tokenizer.chat_template:
            raise EvalConfigError(f"{model_dir}: the tokenizer has no chat template and none was given; "
                                  "evaluation formats chat prompts with one: pass chat_template=<template "
                                  "or file> (with hf_model=), or write it into the checkpoint's manifest")
        # Decoder-only models continue from the last position: pad on the left.
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=_pick_dtype(settings.dtype, self.device)).to(self.device).eval()
        cfg = self.model.config
        self.max_positions = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        self._torch = torch
        log.info("hf backend: %s on %s", model_dir, self.device)

    def _encode(self, batch: list[GenRequest]):
        texts = [self.tokenizer.apply_chat_template(r.as_dicts(), tokenize=False, add_generation_prompt=True)
                 for r in batch]
        max_len = None
        if self.max_positions:  # keep the prompt's end: that is where the question is
            max_len = max(8, self.max_positions - batch[0].max_new_tokens)
        # The template already holds BOS where the model wants one.
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                              truncation=max_len is not None, max_length=max_len).to(self.device)

    def _generate_batch(self, batch: list[GenRequest]) -> list[str]:
        from transformers import GenerationConfig as HFGenerationConfig

        first = batch[0]
        sample = first.temperature >= GREEDY_BELOW
        gen_cfg = HFGenerationConfig(
            max_new_tokens=first.max_new_tokens, do_sample=sample,
            temperature=first.temperature if sample else None, top_p=first.top_p if sample else None,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        enc = self._encode(batch)
        with self._torch.inference_mode():
            out = self.model.generate(**enc, generation_config=gen_cfg)
        new_tokens = out[:, enc["input_ids"].shape[1]:]  # (batch, new)
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def generate(self, requests: list[GenRequest]) -> list[str]:
        self._torch.manual_seed(self.settings.seed)
        answers: list[Optional[str]] = [None] * len(requests)
        # Same sampling settings per batch; similar lengths per batch to waste little padding.
        keyed = sorted(range(len(requests)), key=lambda i: (
            requests[i].temperature, requests[i].top_p, requests[i].max_new_tokens,
            len(str(requests[i].messages))))
        bs = self.settings.batch_size
        groups: list[list[int]] = []
        for i in keyed:
            r = requests[i]
            if groups and len(groups[-1]) < bs and _same_settings(requests[groups[-1][0]], r):
                groups[-1].append(i)
            else:
                groups.append([i])
        for n, idx in enumerate(groups):
            texts = self._generate_batch([requests[i] for i in idx])
            for i, text in zip(idx, texts):
                answers[i] = text
            if (n + 1) % -(-len(groups) // 4) == 0 or n + 1 == len(groups):  # progress in quarters
                log.info("generated %d/%d batches (%d answers)", n + 1, len(groups), sum(map(len, groups[:n + 1])))
        return [a or "" for a in answers]

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


def _same_settings(a: GenRequest, b: GenRequest) -> bool:
    return (a.temperature, a.top_p, a.max_new_tokens) == (b.temperature, b.top_p, b.max_new_tokens)


@contextlib.contextmanager
def open_backend(settings: GenerationConfig, model_dir: str, chat_template: Optional[str],
                 work_dir: Path) -> Iterator[Backend]:
    """The configured backend for ``model_dir``; a vLLM server started here is stopped on exit."""
    if settings.backend == "hf":
        backend = HFBackend(model_dir, settings, chat_template)
        try:
            yield backend
        finally:
            backend.close()
        return
    from .vllm_backend import VLLMBackend, VLLMServer

    if settings.vllm_url is not None:
        yield VLLMBackend(settings.vllm_url, settings)
        return
    with VLLMServer(settings, model_dir, chat_template, work_dir) as url:
        yield VLLMBackend(url, settings)


def describe(settings: GenerationConfig) -> dict:
    """Generation settings as results.json records them (no URLs with credentials, no keys)."""
    keys = ("backend", "max_new_tokens", "temperature", "top_p", "seed", "batch_size", "dtype")
    out = {k: getattr(settings, k) for k in keys}
    if settings.backend == "vllm":
        out["vllm_url"] = settings.vllm_url
        out["vllm_model"] = settings.vllm_model
    return out
