"""Anthropic HH-RLHF's layout (``dataset.layout=hh_rlhf``): two transcripts, the prompt implicit.

Each row has ``chosen`` and ``rejected``, each a whole dialogue ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``
that shares the conversation so far and differs in the final Assistant turn. The prompt is their
longest common prefix, as TRL's ``extract_prompt`` (trl/data_utils.py) computes it, with one
deliberate departure: TRL cuts at the first differing *character*, so when both replies start with
the same words ("I think ..." vs "I don't ..."), TRL's prompt ends inside the reply and the shared
words are trained as context, not as response. Here the common prefix is cut back to the last
``"\\n\\nAssistant:"`` marker, so the prompt always ends where the last reply starts, and each reply
is whole. Where TRL's prompt already ends at that marker (tests/data/test_datasets.py counts the
rows), both give the same text.

The prompt text is then split into chat messages (Human -> user, Assistant -> assistant) so it goes
through the model's chat template like any other conversational data.
"""
from __future__ import annotations

import re

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def common_prefix(a: str, b: str) -> str:
    """The longest common prefix of two strings."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def split_turns(transcript: str) -> list[dict[str, str]]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b"`` -> [{user: a}, {assistant: b}] (content stripped)."""
    marks = list(_TURN.finditer(transcript))
    if not marks or transcript[: marks[0].start()].strip():
        raise ValueError("not an HH-RLHF transcript: expected it to start with '\\n\\nHuman:'")
    messages = []
    for mark, nxt in zip(marks, [*marks[1:], None]):
        end = nxt.start() if nxt is not None else len(transcript)
        messages.append({"role": _ROLES[mark.group(1)], "content": transcript[mark.end():end].strip()})
    return messages


def hh_rlhf_to_pair(row: dict) -> dict:
    """One HH-RLHF row -> ``{prompt: messages, chosen: reply, rejected: reply}`` (other keys kept).

    Raises ValueError (the caller adds file and line) when the row is not two transcripts that share
    a prompt ending in an Assistant marker.
    """
    chosen, rejected = row.get("chosen"), row.get("rejected")
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, str):
            raise ValueError(f"missing field '{key}'" if value is None else
                             f"'{key}' must be an HH-RLHF transcript string, got {type(value).__name__}")
    shared = common_prefix(chosen, rejected)
    cut = shared.rfind(ASSISTANT)
    if cut < 0:
        raise ValueError("the two transcripts share no prompt ending in '\\n\\nAssistant:'")
    prompt_text = chosen[:cut]
    prompt = split_turns(prompt_text)
    if prompt[-1]["role"] != "user":
        raise ValueError("the shared prompt does not end with a Human turn")
    reply_start = cut + len(ASSISTANT)
    out = {k: v for k, v in row.items() if k not in ("chosen", "rejected")}
    out.update(prompt=prompt, chosen=_final_reply(chosen[reply_start:]), rejected=_final_reply(rejected[reply_start:]))
    return out


def _final_reply(text: str) -> str:
    """The reply after the shared prompt; a later Human turn (rare, broken rows) is not part of it."""
    nxt = _TURN.search(text)
    if nxt is not None and nxt.group(1) == "Human":
        raise ValueError("a response continues the dialogue past the final Assistant turn")
    return text.strip()
