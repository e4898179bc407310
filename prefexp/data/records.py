"""Preference rows: normalise text or chat-message fields, and reject bad rows by name.

Every source (sandbox, hub, jsonl) yields plain dicts; this module turns them into
:class:`PreferencePair` objects. A bad row (missing field, empty response, identical chosen and
rejected, NaN or non-numeric score) raises :class:`InvalidRowError` naming the source and row,
or, with ``on_invalid="skip"``, is counted and logged. Nothing is dropped silently.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from ..errors import InputError

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


class InvalidRowError(InputError):
    pass


@dataclass
class PreferencePair:
    index: int  # original row number in the source, the stable tie-break of every ordering
    prompt: Messages  # conversation up to (and including) the last user turn
    chosen: str  # final assistant reply
    rejected: str
    score_chosen: Optional[float] = None
    score_rejected: Optional[float] = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. all K responses and their scores


def _split_conversation(value: Any, what: str) -> tuple[Optional[Messages], str]:
    """Return (context messages or None, final assistant text) of a text or message-list field."""
    if isinstance(value, str):
        return None, value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        last = value[-1]
        if last.get("role") != "assistant":
            raise ValueError(f"'{what}' message list must end with an assistant turn, got role={last.get('role')!r}")
        return [dict(role=m["role"], content=m["content"]) for m in value[:-1]], str(last.get("content", ""))
    raise ValueError(f"'{what}' must be a string or a list of chat messages, got {type(value).__name__}")


def _score(row: dict, key: str) -> Optional[float]:
    if key not in row or row[key] is None:
        return None
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"'{key}'={row[key]!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"'{key}' is {value}")
    return float(value)


def to_pair(row: dict, index: int, require_scores: bool) -> PreferencePair:
    """Normalise one row. Raises ValueError with the reason (the caller adds file and row)."""
    for key in ("prompt", "chosen", "rejected"):
        if key not in row or row[key] is None:
            raise ValueError(f"missing field '{key}'")
    context_c, chosen = _split_conversation(row["chosen"], "chosen")
    context_r, rejected = _split_conversation(row["rejected"], "rejected")
    prompt_value = row["prompt"]
    if isinstance(prompt_value, str):
        prompt = context_c if context_c else [{"role": "user", "content": prompt_value}]
    elif isinstance(prompt_value, list):
        prompt = [dict(role=m["role"], content=m["content"]) for m in prompt_value]
    else:
        raise ValueError(f"'prompt' must be a string or a list of chat messages, got {type(prompt_value).__name__}")
    if not any(m["content"].strip() for m in prompt):
        raise ValueError("empty prompt")
    if not chosen.strip():
        raise ValueError("empty chosen response")
    if not rejected.strip():
        raise ValueError("empty rejected response")
    if chosen.strip() == rejected.strip():
        raise ValueError("chosen and rejected responses are identical")
    score_c, score_r = _score(row, "score_chosen"), _score(row, "score_rejected")
    if require_scores and (score_c is None or score_r is None):
        raise ValueError("missing field 'score_chosen' or 'score_rejected' (needed by the difficulty metric 'rating')")
    extra = {k: row[k] for k in ("responses", "rater_scores", "gold_scores", "gold_chosen", "gold_rejected") if k in row}
    return PreferencePair(index, prompt, chosen, rejected, score_c, score_r, extra)


def to_pairs(rows: Iterable[dict], source: str, on_invalid: str, require_scores: bool) -> list[PreferencePair]:
    """Normalise every row; ``on_invalid`` is "error" (stop at the first bad row) or "skip"."""
    pairs: list[PreferencePair] = []
    skipped: Counter[str] = Counter()
    for index, row in enumerate(rows):
        try:
            pairs.append(to_pair(row, index, require_scores))
        except (ValueError, KeyError, TypeError) as exc:
            reason = str(exc)
            if on_invalid != "skip":
                raise InvalidRowError(
                    f"{source}, row {index}: {reason}. Fix the row, or pass dataset.on_invalid=skip to skip such rows"
                ) from None
            skipped[reason] += 1
            log.warning("skipping %s row %d: %s", source, index, reason)
    if skipped:
        log.warning("skipped %d invalid row(s) of %s: %s", sum(skipped.values()), source, dict(skipped))
    if not pairs:
        raise InvalidRowError(f"{source}: no valid rows")
    return pairs
