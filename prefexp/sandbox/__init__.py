"""The built-in sandbox: a synthetic instruction task, its preference data and a tiny model.

Everything is generated offline from seeds: prompts and the gold judge (``task``), rated
response pairs (``data``), a character-level tokenizer (``tokenizer``), an SFT-trained tiny
Llama cached on disk (``model``), whether it is worth improving (``quality``), its own sampled
responses, the sandbox's preference data (``samples``), and greedy generation scored by the
gold judge (``generate``). Design and calibration: docs/sandbox.md.

Names are re-exported lazily: ``task`` and ``data`` are pure Python, and importing them (the
data loader, the gold judge) should not pay for importing torch and transformers.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "make_prompts": "task", "gold_answer": "task", "gold_score": "task",
    "build_sandbox_rows": "data", "heldout_prompts": "data", "label_noise_report": "data",
    "CHAT_TEMPLATE": "tokenizer", "build_tokenizer": "tokenizer",
    "generate_responses": "generate", "mean_gold_score": "generate",
    "ensure_sandbox_model": "model",
    "ensure_reference_samples": "samples", "reference_report": "quality",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .data import build_sandbox_rows, heldout_prompts, label_noise_report
    from .generate import generate_responses, mean_gold_score
    from .model import ensure_sandbox_model
    from .quality import reference_report
    from .samples import ensure_reference_samples
    from .task import gold_answer, gold_score, make_prompts
    from .tokenizer import CHAT_TEMPLATE, build_tokenizer


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
