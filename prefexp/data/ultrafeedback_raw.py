"""openbmb/UltraFeedback's raw layout (``dataset.layout=ultrafeedback_raw``) as multi-response groups.

Each raw row (train split) has ``source``, ``instruction``, ``models``, ``completions``,
``correct_answers``, ``incorrect_answers``; each completion has ``model``, ``principle``,
``custom_system_prompt``, ``response``, ``annotations`` (aspect -> {Rating, Rationale}),
``fine-grained_score``, ``overall_score`` (1-10) and ``critique``. Only the instruction, the
responses and one score per response are used; pairs are built by :mod:`prefexp.data.groups`.
"""
from __future__ import annotations

import math
from typing import Any, Optional

# overall_score is what HuggingFaceH4/ultrafeedback_binarized ranked by; fine-grained_score is the
# mean of the four aspect ratings.
ULTRAFEEDBACK_SCORE_KEYS = ("overall_score", "fine-grained_score")


def _usable_score(value: Any) -> Optional[float]:
    """The score as a float, or None when missing, NaN, infinite or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        score = float(value)  # also accepts numeric strings, as some hub exports store them
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def ultrafeedback_raw_to_group(row: dict, score_key: str = "overall_score") -> dict:
    """``{prompt: instruction, responses, rater_scores, dropped_responses}`` of one raw row.

    Completions with an empty/whitespace response or a missing/NaN score are left out and counted
    in ``dropped_responses`` (a group may end up with < 2 responses: ``groups.expand_groups`` flags it).
    """
    if score_key not in ULTRAFEEDBACK_SCORE_KEYS:
        raise ValueError(f"dataset.score_key={score_key!r} is not one of {ULTRAFEEDBACK_SCORE_KEYS}")
    if not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
        raise ValueError("missing or empty field 'instruction'")
    completions = row.get("completions")
    if not isinstance(completions, list):
        raise ValueError("missing field 'completions' (a list of dicts)")
    responses, scores = [], []
    for completion in completions:
        text, score = completion.get("response"), _usable_score(completion.get(score_key))
        if isinstance(text, str) and text.strip() and score is not None:
            responses.append(text)
            scores.append(score)
    return {"prompt": row["instruction"], "responses": responses, "rater_scores": scores,
            "dropped_responses": len(completions) - len(responses)}
