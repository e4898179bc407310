"""Turn preference pairs into token ids with the model's chat template.

Template: the tokenizer's own, or ``model.chat_template=<name or .jinja file>`` (built-ins in
:mod:`prefexp.data.chat_templates`); a tokenizer without one gets ``plain``, whose prompt ends on a
token boundary so the prompt's ids are a prefix of prompt + response.

End of a response: the template's end-of-turn marker where it has one, else the EOS token. The
marker is what the template renders right after an assistant message's content (trailing
whitespace dropped): ``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3, EOS for the sandbox and
zephyr templates; ``plain`` renders none, so EOS. TRL 1.16 does the same for conversational data
(its completion is the rendered prompt + reply minus the rendered prompt, so it ends with the
template's end of turn and gets no extra EOS) except that it also keeps the whitespace after the
marker (ChatML's ``"\n"``), which only pads the target with a token the model never needs to emit.

Truncation rule (documented in the README): when prompt + response exceeds ``max_length``, the
prompt is first cut to its last ``max_prompt_length`` tokens (the end of a conversation matters
most), then the response is cut to what is left, keeping its beginning. The end-of-turn is appended
to every response before truncation, as TRL does. Counts of truncated pairs are returned, and pairs
whose chosen and rejected ids became identical by truncation are counted and reported (kept: they
give no preference signal but still carry the SFT side; docs/data.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

from ..data.chat_templates import FALLBACK, TEMPLATES, load_chat_template
from ..data.records import Messages, PreferencePair
from .progress import Progress

log = logging.getLogger(__name__)

FALLBACK_TEMPLATE = TEMPLATES[FALLBACK]
_PROBE = "prefexp-probe-reply-7f3a9c"  # a reply no template alters (no spaces for trim), to find what follows it

@dataclass
class TruncationStats:
    pairs: int = 0
    prompt_truncated: int = 0
    response_truncated: int = 0
    identical_after_truncation: int = 0


def ensure_chat_template(tokenizer, chat_template: Optional[str] = None) -> None:
    """Install ``chat_template`` (``model.chat_template``: a built-in name or a file) if given, else
    keep the tokenizer's own, else ``plain``; set the pad token to EOS when the tokenizer has none."""
    if chat_template is not None:
        tokenizer.chat_template = load_chat_template(chat_template)
        log.info("chat template: %s (model.chat_template)", chat_template)
    elif getattr(tokenizer, "chat_template", None) is None:
        log.warning("tokenizer has no chat template; using the built-in 'plain' template "
                    "(pick another with model.chat_template=<name or .jinja file>)")
        tokenizer.chat_template = FALLBACK_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def end_of_turn_text(tokenizer) -> str:
    """What the template renders right after an assistant reply, trailing whitespace dropped ("" = none)."""
    probe = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception as exc:  # noqa: BLE001 - a template that cannot end on an assistant turn
        log.warning("the chat template cannot render an assistant turn (%s); responses end with EOS", exc)
        return ""
    if _PROBE not in text:
        return ""
    return text[text.rindex(_PROBE) + len(_PROBE):].rstrip()


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids closing every response: the template's end-of-turn marker, or ``[eos]`` without one.

    Cached on the tokenizer per template (it is asked once per response)."""
    cache = tokenizer.__dict__.setdefault("_prefexp_end_of_turn", {})
    key = tokenizer.chat_template
    if key not in cache:
        text = end_of_turn_text(tokenizer)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else [tokenizer.eos_token_id]
        cache[key] = ids
        log.info("responses end with %r (%s)", text or tokenizer.eos_token,
                 "the chat template's end of turn" if text else "EOS: the template has no end-of-turn marker")
    return cache[key]


def prompt_ids(tokenizer, prompt: Messages) -> list[int]:
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def response_ids(tokenizer, response: str) -> list[int]:
    return tokenizer(response, add_special_tokens=False)["input_ids"] + end_of_turn_ids(tokenizer)


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer, max_length: int,
                   max_prompt_length: int) -> tuple[list[dict], TruncationStats]:
    """One example per pair: ``{index, prompt_ids, chosen_ids, rejected_ids}`` (response ids only)."""
    examples, stats, identical = tokenize_pairs_quietly(pairs, tokenizer, max_length, max_prompt_length)
    log_truncation(stats, identical, max_length, max_prompt_length)
    return examples, stats


def tokenize_pairs_quietly(pairs: Sequence[PreferencePair], tokenizer, max_length: int,
                           max_prompt_length: int) -> tuple[list[dict], TruncationStats, list[int]]:
    """:func:`tokenize_pairs` without its warnings, plus the indices of the pairs made identical by
    truncation (the token cache stores them to repeat the same warnings on a hit)."""
    stats = TruncationStats(pairs=len(pairs))
    examples = []
    identical: list[int] = []
    progress = Progress(len(pairs), "tokenising", "pairs", log)  # off a terminal, when it takes a while
    for n, pair in enumerate(pairs, 1):
        p = prompt_ids(tokenizer, pair.prompt)
        c, r = response_ids(tokenizer, pair.chosen), response_ids(tokenizer, pair.rejected)
        if len(p) + max(len(c), len(r)) > max_length and len(p) > max_prompt_length:
            p = p[-max_prompt_length:]
            stats.prompt_truncated += 1
        room = max_length - len(p)
        if len(c) > room or len(r) > room:
            stats.response_truncated += 1
            c, r = c[:room], r[:room]
            if c == r:
                stats.identical_after_truncation += 1
                identical.append(pair.index)
        examples.append({"index": pair.index, "prompt_ids": p, "chosen_ids": c, "rejected_ids": r})
        progress.update(n)
    return examples, stats, identical


def log_truncation(stats: TruncationStats, identical: Sequence[int], max_length: int, max_prompt_length: int) -> None:
    if stats.prompt_truncated or stats.response_truncated:
        log.warning("truncated %d prompt(s) and %d response pair(s) of %d to max_length=%d (max_prompt_length=%d)",
                    stats.prompt_truncated, stats.response_truncated, stats.pairs, max_length, max_prompt_length)
    if identical:
        log.warning("%d pair(s) have identical chosen and rejected tokens after truncation (kept; no preference "
                    "signal): pair index %s%s; raise dataset.max_length to tell them apart", len(identical),
                    list(identical[:10]), " ..." if len(identical) > 10 else "")
