"""Shared pieces of the reward tests: the tiny GPT-2, synthetic pairs, a fast recipe."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from prefexp.data.records import PreferencePair
from prefexp.reward import RewardModelConfig
from tests.conftest import SHARED

TINY_GPT2 = SHARED / "data" / "models" / "tiny-gpt2"
TOPICS = ["the film", "this book", "the meal", "our trip", "the song", "that game", "the class", "his essay"]

# n_embd=2: every LayerNorm output is nearly +-(1, -1), so a large step saturates both responses to
# the same side and the BT gradient vanishes. lr 1e-3 (constant) learns: accuracy 1.0 by step ~10,
# BT loss ~0.54 at step 80.
FAST = dict(max_steps=80, per_device_batch_size=8, learning_rate=1e-3, lr_scheduler="constant",
            warmup_ratio=0.0, logging_steps=10, seed=0)


def fast_hparams(**changes) -> RewardModelConfig:
    return RewardModelConfig(**{**FAST, **changes})


def synthetic_rows(n: int = 64, seed: int = 0) -> list[dict]:
    """Chosen ends in "good", rejected in "bad": a reward model must find that one token."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        rows.append({"prompt": f"Review {topic} #{i}", "chosen": f"I think {topic} was good",
                     "rejected": f"I think {topic} was bad"})
    return rows


def synthetic_pairs(n: int = 64, seed: int = 0) -> list[PreferencePair]:
    return [PreferencePair(i, [{"role": "user", "content": r["prompt"]}], r["chosen"], r["rejected"])
            for i, r in enumerate(synthetic_rows(n, seed))]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_gpt2() -> str:
    if not TINY_GPT2.is_dir():
        pytest.skip("../shared/data/models/tiny-gpt2 is not beside the repo")
    return str(TINY_GPT2)


@pytest.fixture(scope="session")
def tokenizer(tiny_gpt2):
    from transformers import AutoTokenizer

    from prefexp.engine.tokenize import ensure_chat_template

    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    ensure_chat_template(tok)  # no pad token: pad = eos, plain User:/Assistant: template
    return tok
