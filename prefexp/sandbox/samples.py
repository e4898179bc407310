"""Responses sampled from the reference model itself, K per prompt, cached beside the model.

This is how on-policy preference data is made (UltraFeedback rates completions the models wrote;
on-policy DPO recipes sample the SFT model): the sandbox's pairs are then texts the reference
would actually write, and a preference update moves probability between its own habits instead
of towards hand-corrupted strings it would never produce.

Sampling is plain ancestral sampling (``temperature``, no top-k / top-p) with a torch generator
seeded per batch, so the samples are a pure function of (model, prompts, k, temperature, seed).
They are written once to ``<model dir>/samples/<key>.json`` (prefexp.cachefs: built by one process,
atomic rename) and reused.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Sequence

# Bump when the sampling recipe changes in a way the key's arguments do not capture.
SAMPLES_VERSION = 1
# Room for the longest answer the SFT data teaches (a 6-item list inside the longest filler, ~70
# characters); a sample that runs past it is kept as cut (the gold scorer grades it like any text).
MAX_NEW_TOKENS = 80
BATCH_PROMPTS = 64


def samples_key(prompts: Sequence[str], k: int, temperature: float, seed: int) -> str:
    blob = json.dumps({"version": SAMPLES_VERSION, "prompts": list(prompts), "k": k, "temperature": temperature,
                       "seed": seed, "max_new_tokens": MAX_NEW_TOKENS, "batch": BATCH_PROMPTS})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sample_responses(model, tokenizer, prompts: Sequence[str], k: int, temperature: float, seed: int) -> list[list[str]]:
    """``k`` sampled answers per prompt (a list per prompt, in prompt order)."""
    import torch

    from .tokenizer import render_prompt

    if k < 1 or temperature <= 0:
        raise ValueError(f"k={k} must be >= 1 and temperature={temperature} > 0")
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # generated tokens start at the same column in every row
    out: list[list[str]] = []
    try:
        with torch.no_grad(), torch.random.fork_rng():  # the caller's RNG state is left as it was
            for b, start in enumerate(range(0, len(prompts), BATCH_PROMPTS)):
                chunk = prompts[start:start + BATCH_PROMPTS]
                enc = tokenizer([render_prompt(tokenizer, p) for p in chunk], return_tensors="pt", padding=True,
                                add_special_tokens=False)
                torch.manual_seed(seed * 1_000_003 + b)  # per batch: a cache miss halfway re-draws the same
                gen = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                     num_return_sequences=k, max_new_tokens=MAX_NEW_TOKENS,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
                texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                out.extend([t.strip() for t in texts[i * k:(i + 1) * k]] for i in range(len(chunk)))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def ensure_reference_samples(model_dir: Path, prompts: Sequence[str], k: int, temperature: float,
                             seed: int) -> list[list[str]]:
    """The cached samples of the model in ``model_dir`` for these arguments (sampled on a miss, by
    one process: concurrent runs, or the ranks of one run, wait for it and reuse the file)."""
    from ..cachefs import cached_json

    path = Path(model_dir) / "samples" / f"{samples_key(prompts, k, temperature, seed)}.json"

    def compute() -> dict:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        print(f"sampling {k} responses for each of {len(prompts)} prompts from {model_dir}", file=sys.stderr,
              flush=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        responses = sample_responses(model, tokenizer, list(prompts), k, temperature, seed)
        return {"k": k, "temperature": temperature, "seed": seed, "responses": responses}

    def shape_problem(data: dict) -> str | None:
        got = data["responses"]
        if len(got) != len(prompts) or any(len(r) != k for r in got):
            return f"responses for {len(got)} prompts, expected {len(prompts)} x {k}"
        return None

    data, _ = cached_json(path, compute, what="sandbox samples", keys=["k", "temperature", "seed", "responses"],
                          check=shape_problem)
    return data["responses"]
