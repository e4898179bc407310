"""The sandbox reference model's answers, generated once per reference and decoding, not once per
evaluated run: every run of a study is scored against the same reference on the same prompts, so
its answers are cached in ``<eval.cache_dir>/sandbox_reference_answers/<key>.json`` (a checked
entry: checksum and size, moved aside and rebuilt when it fails; built by one process at a time).

The key holds everything the answers depend on: the reference's weights fingerprint, the
generation settings (backend, sampling temperature, top_p, seed, batch size, dtype, device), the
chat template, the number of answers per prompt and the prompts themselves. The backend seeds
each generate call, so a cached answer is the answer a fresh generation would give. The eval dir
still gets its ``reference_outputs*.json`` copy, as for the policy.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Optional

from .config import GenerationConfig
from .generation import GenRequest, describe, open_backend

log = logging.getLogger(__name__)
FOLDER = "sandbox_reference_answers"


def answers_key(weights: str, g: GenerationConfig, chat_template: Optional[str], prompts: list[str], k: int) -> dict:
    return {"weights": weights, "generation": {**describe(g), "device": g.device}, "chat_template": chat_template,
            "answers_per_prompt": k, "prompts_sha256": hashlib.sha256("\n\0".join(prompts).encode()).hexdigest(),
            "n_prompts": len(prompts)}


def generate_answers(g: GenerationConfig, model_dir: str, chat_template: Optional[str], prompts: list[str],
                     log_dir: Path) -> list[str]:
    """One answer per entry of ``prompts`` (a prompt repeated k times gets k), in one seeded
    generate call: the sandbox's single-turn chat requests."""
    with open_backend(g, model_dir, chat_template, log_dir) as backend:
        return backend.generate([GenRequest.chat([{"role": "user", "content": p}], g.temperature, g.max_new_tokens,
                                                 g.top_p) for p in prompts])


def cached_reference_answers(cache_dir: Path, g: GenerationConfig, ref_dir: str, chat_template: Optional[str],
                             prompts: list[str], k: int, log_dir: Path) -> tuple[list[str], bool]:
    """(answers, generated now) for the reference model at ``ref_dir``."""
    from ..cachefs import cached_json
    from ..engine.weights_key import weights_fingerprint

    key = answers_key(weights_fingerprint(ref_dir, cache_dir), g, chat_template, prompts, k)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def compute() -> dict:
        log.info("sandbox: reference %s answers %d prompts x %d (temperature %g), cached for every run",
                 ref_dir, len(prompts), k, g.temperature)
        many = [p for p in prompts for _ in range(k)]  # prompt-major
        return {"key": key, "answers": generate_answers(g, ref_dir, chat_template, many, log_dir)}

    def check(data) -> Optional[str]:
        if data["key"] != key:
            return "its key does not match its name"
        if len(data["answers"]) != len(prompts) * k:
            return f"{len(data['answers'])} answers for {len(prompts)} prompts x {k}"
        return None

    data, built = cached_json(Path(cache_dir) / FOLDER / f"{name}.json", compute, what="sandbox reference answers",
                              keys=["key", "answers"], check=check)
    if not built:
        log.info("sandbox: reference answers reused from %s", Path(cache_dir) / FOLDER / f"{name}.json")
    return list(data["answers"]), built
