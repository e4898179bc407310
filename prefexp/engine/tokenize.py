"""Turn preference pairs into token ids with the tokenizer's chat template.

Truncation rule (documented in the README): when prompt + response exceeds ``max_length``, the
prompt is first cut to its last ``max_prompt_length`` tokens (the end of a conversation matters
most), then the response is cut to what is left, keeping its beginning. The EOS token is appended
to every response before truncation, as TRL does. Counts of truncated pairs are returned.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from ..data.records import Messages, PreferencePair

log = logging.getLogger(__name__)

FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


@dataclass
class TruncationStats:
    pairs: int = 0
    prompt_truncated: int = 0
    response_truncated: int = 0


def ensure_chat_template(tokenizer) -> None:
    if getattr(tokenizer, "chat_template", None) is None:
        log.warning("tokenizer has no chat template; using a plain 'User:/Assistant:' template")
        tokenizer.chat_template = FALLBACK_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def prompt_ids(tokenizer, prompt: Messages) -> list[int]:
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def response_ids(tokenizer, response: str) -> list[int]:
    return tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer, max_length: int,
                   max_prompt_length: int) -> tuple[list[dict], TruncationStats]:
    """One example per pair: ``{index, prompt_ids, chosen_ids, rejected_ids}`` (response ids only)."""
    stats = TruncationStats(pairs=len(pairs))
    examples = []
    for pair in pairs:
        p = prompt_ids(tokenizer, pair.prompt)
        c, r = response_ids(tokenizer, pair.chosen), response_ids(tokenizer, pair.rejected)
        if len(p) + max(len(c), len(r)) > max_length and len(p) > max_prompt_length:
            p = p[-max_prompt_length:]
            stats.prompt_truncated += 1
        room = max_length - len(p)
        if len(c) > room or len(r) > room:
            stats.response_truncated += 1
            c, r = c[:room], r[:room]
        examples.append({"index": pair.index, "prompt_ids": p, "chosen_ids": c, "rejected_ids": r})
    if stats.prompt_truncated or stats.response_truncated:
        log.warning("truncated %d prompt(s) and %d response pair(s) of %d to max_length=%d (max_prompt_length=%d)",
                    stats.prompt_truncated, stats.response_truncated, stats.pairs, max_length, max_prompt_length)
    return examples, stats
