"""Multi-response groups: K rated responses of one prompt, and the rules that turn them into pairs.

A group row is ``{prompt, responses: list[str], rater_scores: list[float]}`` (same length, K >= 2).
Pair rules (``dataset.pair_rule``); positions break every tie, lowest first:

* ``best_vs_random``: chosen = the highest rated response, rejected = a uniformly random other one
  (HuggingFaceH4/ultrafeedback_binarized's rule; the rejected one may tie with the chosen one).
* ``best_vs_worst``: chosen = the highest rated, rejected = the lowest rated of the others.
* ``all_in_band``: every ordered pair (i, j) with scores[i] > scores[j] and
  band_low <= scores[i] - scores[j] <= band_high (both inclusive, None = unbounded), in (i, j) order.

A candidate whose text equals the chosen text (after stripping whitespace) is never paired with it.
A group whose responses all tie gives no pair; :func:`expand_groups` counts and logs such groups.
Every pair row keeps the whole group (``responses``, ``rater_scores``) for multi-response losses.

Positive labels (``dataset.group_positive``, :func:`group_positive_labels`): ``best`` = the responses
rated at the group's maximum; ``threshold`` = rating >= ``dataset.group_positive_min``.
"""
from __future__ import annotations

import logging
import math
import random
from typing import Any, Callable, Optional, Sequence

from .records import InvalidRowError
from .skips import not_shown, skip
from .ultrafeedback_raw import ULTRAFEEDBACK_SCORE_KEYS

log = logging.getLogger(__name__)

LAYOUTS = ("pairs", "ultrafeedback_raw", "hh_rlhf")
PAIR_RULES = ("best_vs_random", "best_vs_worst", "all_in_band")
GROUP_POSITIVE_RULES = ("best", "threshold")


def _best_position(scores: Sequence[float]) -> int:
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _pair_row(prompt: Any, responses: Sequence[str], scores: Sequence[float], i: int, j: int) -> dict:
    return {"prompt": prompt, "chosen": responses[i], "rejected": responses[j],
            "score_chosen": scores[i], "score_rejected": scores[j],
            "responses": list(responses), "rater_scores": list(scores)}


def _in_band(margin: float, band_low: Optional[float], band_high: Optional[float]) -> bool:
    return (band_low is None or margin >= band_low) and (band_high is None or margin <= band_high)


def pairs_from_group(prompt: Any, responses: Sequence[str], scores: Sequence[float], rule: str,
                     rng: random.Random, band_low: Optional[float] = None,
                     band_high: Optional[float] = None) -> list[dict]:
    """Pair rows of one group under ``rule`` (see the module docstring); [] when none qualifies.

    ``rng`` is only drawn from by ``best_vs_random`` (once per group that has a candidate).
    """
    if rule not in PAIR_RULES:
        raise ValueError(f"dataset.pair_rule={rule!r} is not one of {PAIR_RULES}")
    if rule == "all_in_band":
        return [_pair_row(prompt, responses, scores, i, j)
                for i in range(len(scores)) for j in range(len(scores))
                if scores[i] > scores[j] and _in_band(scores[i] - scores[j], band_low, band_high)
                and responses[i].strip() != responses[j].strip()]
    if len(set(scores)) < 2:
        return []  # all tied: "best" is arbitrary, so there is nothing to prefer
    best = _best_position(scores)
    candidates = [j for j in range(len(scores)) if j != best and responses[j].strip() != responses[best].strip()]
    if not candidates:
        return []
    if rule == "best_vs_random":
        worse = rng.choice(candidates)
    else:
        worse = min(candidates, key=lambda j: (scores[j], j))
    return [_pair_row(prompt, responses, scores, best, worse)]


def group_positive_labels(scores: Sequence[float], rule: str = "best",
                          positive_min: Optional[float] = None) -> list[bool]:
    """Which responses of a group count as positive. May be all True or all False: callers that
    need both a positive and a negative check that themselves (and count what they leave out)."""
    if rule == "best":
        top = max(scores, default=None)
        return [s == top for s in scores]
    if rule == "threshold":
        if positive_min is None:
            raise ValueError("dataset.group_positive=threshold needs dataset.group_positive_min")
        return [s >= positive_min for s in scores]
    raise ValueError(f"dataset.group_positive={rule!r} is not one of {GROUP_POSITIVE_RULES}")


def group_problem(row: dict) -> Optional[str]:
    """Why ``row`` is not a usable group, or None when it is."""
    for key in ("prompt", "responses", "rater_scores"):
        if row.get(key) is None:
            return f"missing field '{key}'"
    responses, scores = row["responses"], row["rater_scores"]
    if len(responses) != len(scores):
        return f"'responses' has {len(responses)} item(s) but 'rater_scores' has {len(scores)}"
    if len(responses) < 2:
        return f"a group needs >= 2 responses, got {len(responses)}"
    if not all(isinstance(r, str) for r in responses):
        return "'responses' must be strings"
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in scores):
        return f"'rater_scores' must be finite numbers, got {list(scores)!r}"
    return None


def expand_groups(rows: Sequence[dict], rule: str, seed: int, band_low: Optional[float],
                  band_high: Optional[float], source: str, on_invalid: str = "error",
                  to_group: Optional[Callable[[dict], dict]] = None) -> list[dict]:
    """Pair rows of every group row, in row order, then the rule's order within a row.

    Row n draws from ``random.Random(f"pairs-{seed}-{n}")``, so its pairs depend on nothing but
    (seed, n, the row). ``to_group`` converts a raw row first (e.g. ``ultrafeedback_raw.ultrafeedback_raw_to_group``);
    its errors are bad rows too. A bad row raises :class:`InvalidRowError` naming ``source`` and the
    row, or with ``on_invalid="skip"`` is counted and logged. Groups without a pair are counted and
    logged as well, as are responses the converter dropped (``dropped_responses``).
    """
    pairs: list[dict] = []
    skipped = no_pair = dropped = 0
    for n, raw in enumerate(rows):
        try:
            group = to_group(raw) if to_group is not None else raw
            problem = group_problem(group)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problem = str(exc)
        if problem is not None:
            where = getattr(raw, "where", "") or f"row {n + 1}"  # 1-based: a file's line, else the row
            if on_invalid != "skip":
                raise InvalidRowError(f"{source}, {where}: {problem}. Fix the row, or pass "
                                      "dataset.on_invalid=skip to skip such rows")
            skip(log, source, where, problem, skipped)
            skipped += 1
            continue
        dropped += group.get("dropped_responses", 0)
        rng = random.Random(f"pairs-{seed}-{n}")
        new = pairs_from_group(group["prompt"], group["responses"], group["rater_scores"], rule, rng,
                               band_low, band_high)
        no_pair += not new
        pairs.extend(new)
    groups = len(rows) - skipped
    log.info("%s: %d group(s) gave %d pair(s) (dataset.pair_rule=%s)", source, groups, len(pairs), rule)
    if dropped:
        log.warning("%s: dropped %d response(s) with empty text or a missing/NaN score", source, dropped)
    if skipped:
        log.warning("%s: skipped %d invalid group row(s)%s", source, skipped, not_shown(skipped))
    if no_pair:
        log.warning("%s: %d of %d group(s) gave no pair (all responses tied or identical, or none in the "
                    "band) under dataset.pair_rule=%s", source, no_pair, groups, rule)
    if not pairs:
        raise InvalidRowError(f"{source}: no group gave a pair under dataset.pair_rule={rule}")
    return pairs


def check_group_settings(cfg: Any) -> list[str]:
    """Errors (as ``dataset.key=value ...`` strings) in a DatasetConfig's group/pair keys."""
    errors = []
    layout, rule = getattr(cfg, "layout", "pairs"), getattr(cfg, "pair_rule", "best_vs_random")
    low, high = getattr(cfg, "pair_band_low", None), getattr(cfg, "pair_band_high", None)
    positive = getattr(cfg, "group_positive", "best")
    if layout not in LAYOUTS:
        errors.append(f"dataset.layout={layout!r} is not one of {LAYOUTS}")
    if layout == "ultrafeedback_raw" and getattr(cfg, "source", None) == "sandbox":
        errors.append("dataset.layout=ultrafeedback_raw reads openbmb/UltraFeedback rows (dataset.source=hf or "
                      "jsonl); the sandbox builds its pairs itself (dataset.sandbox.pair_rule)")
    if rule not in PAIR_RULES:
        errors.append(f"dataset.pair_rule={rule!r} is not one of {PAIR_RULES}")
    if rule == "all_in_band" and low is not None and high is not None and low > high:
        errors.append(f"dataset.pair_band_low={low} > dataset.pair_band_high={high}: the band is empty")
    if rule != "all_in_band" and (low is not None or high is not None):
        errors.append(f"dataset.pair_band_low/pair_band_high only apply to dataset.pair_rule=all_in_band "
                      f"(got pair_rule={rule}); unset them")
    score_key = getattr(cfg, "score_key", "overall_score")
    if score_key not in ULTRAFEEDBACK_SCORE_KEYS:
        errors.append(f"dataset.score_key={score_key!r} is not one of {ULTRAFEEDBACK_SCORE_KEYS}")
    if positive not in GROUP_POSITIVE_RULES:
        errors.append(f"dataset.group_positive={positive!r} is not one of {GROUP_POSITIVE_RULES}")
    if positive == "threshold" and getattr(cfg, "group_positive_min", None) is None:
        errors.append("dataset.group_positive=threshold needs dataset.group_positive_min")
    return errors
