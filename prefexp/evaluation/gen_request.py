"""What a benchmark asks a generation backend for: one chat request, one string back.

This is the bottom of the generation layer: ``generation`` (the HF backend and the backend
picker) and ``vllm_backend`` both import it, and it imports neither, so neither backend module
needs the other at import time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Below this temperature FastChat decodes greedily (gen_model_answer.py: `do_sample = temperature
# >= 1e-4`); sampling at ~0 would only add noise.
GREEDY_BELOW = 1e-4


@dataclass(frozen=True)
class GenRequest:
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...), ending with a user turn
    temperature: float
    max_new_tokens: int
    top_p: float = 1.0

    @staticmethod
    def chat(messages: list[dict], temperature: float, max_new_tokens: int, top_p: float = 1.0):
        pairs = tuple((m["role"], m["content"]) for m in messages)
        return GenRequest(pairs, float(temperature), int(max_new_tokens), float(top_p))

    def as_dicts(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]


class Backend(Protocol):
    name: str

    def generate(self, requests: list[GenRequest]) -> list[str]: ...
