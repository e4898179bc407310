"""Preference rows: normalise text or chat-message fields, and reject bad rows by name.

Every source (sandbox, hub, local file) yields plain dicts; this module turns them into
:class:`PreferencePair` objects. A bad row (missing field, empty response, identical chosen and
rejected, NaN, boolean or non-numeric score, unknown chat role) raises :class:`InvalidRowError`
naming the source and the row's 1-based place (``line N`` of a file, else ``row N``), or, with
``on_invalid="skip"``, is counted and logged. Duplicate rows are kept, counted and reported (a
dataset may repeat a pair on purpose; dropping it would change the data's weighting silently).
Nothing is dropped silently.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from ..errors import InputError
from .files import not_an_object
from .skips import not_shown, skip

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
ROLES = ("system", "user", "assistant", "tool")
UNSCORED_FIX = ("the difficulty metric 'rating' (router.metric=rating: read by the router, the curriculum and "
                "margin losses such as mixdpo) orders pairs by score. For unscored data pass curriculum=none "
                "router=none with a loss that takes no margins (e.g. loss=dpo), or map the score columns with "
                "dataset.columns.score_chosen=<column> dataset.columns.score_rejected=<column>")


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


def _messages(value: list, what: str) -> Messages:
    out = []
    for n, m in enumerate(value, start=1):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"'{what}' message {n} must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"'{what}' message {n} has unknown chat role {m['role']!r}; roles are {list(ROLES)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"'{what}' message {n} content must be a string, got {type(m['content']).__name__}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _split_conversation(value: Any, what: str) -> tuple[Optional[Messages], str]:
    """Return (context messages or None, final assistant text) of a text or message-list field."""
    if isinstance(value, str):
        return None, value
    if isinstance(value, list) and value:
        messages = _messages(value, what)
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"'{what}' message list must end with an assistant turn, got role={messages[-1]['role']!r}")
        return messages[:-1], messages[-1]["content"]
    raise ValueError(f"'{what}' must be a string or a list of chat messages, got {type(value).__name__}")


def _score(row: dict, key: str) -> Optional[float]:
    if key not in row or row[key] is None:
        return None
    value = row[key]
    if isinstance(value, bool):  # float(True) == 1.0 would pass as a rating
        raise ValueError(f"'{key}'={value!r} is a boolean, not a number")
    if not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"'{key}'={row[key]!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"'{key}' is {value}")
    return float(value)


def to_pair(row: dict, index: int, require_scores: bool) -> PreferencePair:
    """Normalise one row. Raises ValueError with the reason (the caller adds file and row)."""
    if "_layout_error" in row:
        raise ValueError(row["_layout_error"])
    problem = not_an_object(row)
    if problem:
        raise ValueError(problem)
    for key in ("prompt", "chosen", "rejected"):
        if key not in row or row[key] is None:
            raise ValueError(f"missing field {_field_name(row, key)}")
    context_c, chosen = _split_conversation(row["chosen"], "chosen")
    context_r, rejected = _split_conversation(row["rejected"], "rejected")
    prompt_value = row["prompt"]
    if isinstance(prompt_value, str):
        prompt = context_c if context_c else [{"role": "user", "content": prompt_value}]
    elif isinstance(prompt_value, list) and prompt_value:
        prompt = _messages(prompt_value, "prompt")
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
    if score_c is not None and score_r is not None and not math.isfinite(score_c - score_r):
        # 1e308 - (-1e308) overflows: an infinite margin breaks every router, loss and plot downstream
        raise ValueError(f"margin score_chosen - score_rejected = {score_c:g} - {score_r:g} is not finite "
                         f"(overflows float64); rescale the scores")
    if require_scores and (score_c is None or score_r is None):
        key = "score_chosen" if score_c is None else "score_rejected"
        if key in getattr(row, "renamed", {}):  # a mapped column absent from this row: a bad row, not unscored data
            raise ValueError(f"missing field {_field_name(row, key)}")
        raise ValueError(f"missing field '{key}': {UNSCORED_FIX}")
    extra = {k: row[k] for k in ("responses", "rater_scores", "gold_scores", "gold_chosen", "gold_rejected") if k in row}
    return PreferencePair(index, prompt, chosen, rejected, score_c, score_r, extra)


def _field_name(row: dict, key: str) -> str:
    """``'score_chosen'``, or ``'rating_chosen' (dataset.columns.score_chosen)`` under a column mapping."""
    column = getattr(row, "renamed", {}).get(key)
    return f"'{key}'" if column is None else f"'{column}' (dataset.columns.{key}={column})"


def _where(row: dict, index: int) -> str:
    """The row's 1-based place: ``line N`` of a file (blank lines counted), else ``row N``."""
    return getattr(row, "where", "") or f"row {index + 1}"


def _identity(pair: PreferencePair) -> tuple:
    return (tuple((m["role"], m["content"]) for m in pair.prompt), pair.chosen, pair.rejected)


def to_pairs(rows: Iterable[dict], source: str, on_invalid: str, require_scores: bool) -> list[PreferencePair]:
    """The pairs of :func:`read_pairs`, without its counts."""
    return read_pairs(rows, source, on_invalid, require_scores)[0]


def read_pairs(rows: Iterable[dict], source: str, on_invalid: str,
               require_scores: bool) -> tuple[list[PreferencePair], dict]:
    """Normalise every row; ``on_invalid`` is "error" (stop at the first bad row) or "skip".

    ``PreferencePair.index`` counts the rows read (0-based; the stable id of every ordering); messages
    name the row's 1-based line or row. Duplicates (same prompt, chosen and rejected) are kept and
    reported with the line of each first occurrence. Returns the pairs and their counts
    (``rows_read``, ``skipped_invalid`` by reason, ``duplicates_kept``) for the run's summary.
    """
    pairs: list[PreferencePair] = []
    skipped: Counter[str] = Counter()
    seen: dict[tuple, str] = {}
    duplicates: list[str] = []
    for index, row in enumerate(rows):
        where = _where(row, index)
        try:
            pair = to_pair(row, index, require_scores)
        except (ValueError, KeyError, TypeError) as exc:
            reason = str(exc)
            if on_invalid != "skip":
                fix = "" if UNSCORED_FIX in reason else ". Fix the row, or pass dataset.on_invalid=skip to skip such rows"
                raise InvalidRowError(f"{source}, {where}: {reason}{fix}") from None
            skip(log, source, where, reason, sum(skipped.values()))
            skipped[reason.split(":")[0]] += 1
            continue
        pairs.append(pair)
        key = _identity(pair)
        if key in seen:
            duplicates.append(f"{where} = {seen[key]}")
        else:
            seen[key] = where
    if skipped:
        log.warning("skipped %d invalid row(s) of %s: %s%s", sum(skipped.values()), source, dict(skipped),
                    not_shown(sum(skipped.values())))
    if duplicates:
        log.warning("%s: %d duplicate row(s) (same prompt, chosen and rejected), kept: %s%s", source, len(duplicates),
                    "; ".join(duplicates[:5]), " ..." if len(duplicates) > 5 else "")
    if not pairs:
        hint = f" ({UNSCORED_FIX})" if any("score" in r for r in skipped) else ""
        raise InvalidRowError(f"{source}: no valid rows; skipped {sum(skipped.values())}: {dict(skipped)}{hint}")
    counts = {"rows_read": len(pairs) + sum(skipped.values()), "skipped_invalid": dict(skipped),
              "duplicates_kept": len(duplicates)}
    return pairs, counts


def negative_margin_warning(pairs: list[PreferencePair], chosen_column: str, rejected_column: str) -> Optional[str]:
    """The warning for data where most scored pairs rate the rejected response higher (swapped
    columns, most likely), else None. Such pairs still train, and a margin router sends them to SFT
    on the lower-rated response, so the user hears about it once, with the fix."""
    scored = [p for p in pairs if p.score_chosen is not None and p.score_rejected is not None]
    negative = sum(p.score_chosen < p.score_rejected for p in scored)
    if not scored or 2 * negative <= len(scored):
        return None
    return (f"{negative} of {len(scored)} scored pairs have score_chosen < score_rejected (a negative margin): "
            f"are the columns swapped? If so, swap them back with dataset.columns.chosen={rejected_column} "
            f"dataset.columns.rejected={chosen_column} (the responses) or dataset.columns.score_chosen=score_rejected "
            f"dataset.columns.score_rejected=score_chosen (the scores)")
