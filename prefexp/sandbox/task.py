"""The sandbox task: short instructions with exactly one correct answer, and their gold judge.

Five task kinds, small enough for a character-level model of ~100k parameters to learn:

    sort: 7 3 9 1        -> 1 3 7 9        (digits, ascending, space separated)
    reverse: k e y       -> y e k          (letters, space separated)
    add: 23 + 45         -> 68
    max: 42 7 19         -> 42
    count a: banana      -> 3

Prompts are drawn from a seeded RNG. A fixed slice of the prompt space (by hash of the prompt
text) is reserved for evaluation, so :func:`make_prompts` and :func:`heldout_prompts` can never
overlap, whatever seeds the caller picks.

:func:`gold_score` is the task's ground truth, used both to grade synthetic responses (and so to
measure how often the noisy rater mislabels a pair) and to judge model generations at evaluation.
"""
from __future__ import annotations

import hashlib
import random
import re
import string

KINDS = ("sort", "reverse", "add", "max", "count")
LIST_KINDS = ("sort", "reverse")  # answers are item lists; the others are a single number
# Letters used in reverse/count prompts; a small alphabet keeps counts above zero often enough.
COUNT_ALPHABET = "abcdefgh"
HELDOUT_BUCKETS = 10  # one prompt in HELDOUT_BUCKETS (by hash) is evaluation-only

ITEM_PENALTY = 3.0  # per wrong / missing / extra item: gold answer with k errors scores 10 - 3k
FREE_FILLER_WORDS = 3  # "Sure! Here it is:" costs nothing ...
FILLER_PENALTY = 0.15  # ... each non-answer word beyond that costs a little
MAX_SCORED_WORDS = 200  # bound the edit-distance cost on runaway generations

_PUNCT = ".,;:!?\"'()[]"


def _draw_prompt(rng: random.Random) -> str:
    kind = rng.choice(KINDS)
    if kind == "sort":
        return "sort: " + " ".join(str(rng.randrange(10)) for _ in range(rng.randint(3, 6)))
    if kind == "reverse":
        return "reverse: " + " ".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 6)))
    if kind == "add":
        return f"add: {rng.randint(10, 99)} + {rng.randint(10, 99)}"
    if kind == "max":
        return "max: " + " ".join(str(rng.randrange(100)) for _ in range(rng.randint(3, 5)))
    word = "".join(rng.choice(COUNT_ALPHABET) for _ in range(rng.randint(4, 8)))
    # Mostly ask for a letter that occurs, so the answer is not almost always 0.
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice(COUNT_ALPHABET)
    return f"count {letter}: {word}"


def is_heldout(prompt: str) -> bool:
    """True if ``prompt`` belongs to the evaluation-only slice of the prompt space."""
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % HELDOUT_BUCKETS == 0


def generate_prompts(n: int, seed: int, heldout: bool) -> list[str]:
    """``n`` distinct prompts from the training (``heldout=False``) or evaluation slice."""
    if n < 0:
        raise ValueError(f"n={n} must be >= 0")
    # Distinct streams for the two slices, so seed s of one is not a filtered copy of the other.
    rng = random.Random(f"sandbox-prompts-{'heldout' if heldout else 'train'}-{seed}")
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct prompts (prompt space too small?)")
        p = _draw_prompt(rng)
        if p in seen or is_heldout(p) != heldout:
            continue
        seen.add(p)
        out.append(p)
    return out


def make_prompts(n: int, seed: int) -> list[str]:
    """``n`` distinct training prompts, a pure function of ``(n, seed)``; never held-out ones.

    ``make_prompts(n, s)`` is a prefix of ``make_prompts(m, s)`` for ``n <= m``.
    """
    return generate_prompts(n, seed, heldout=False)


def parse_prompt(prompt: str) -> tuple[str, list[str]]:
    """``(kind, operands)`` of a sandbox prompt; ValueError if it is not one."""
    head, sep, body = prompt.partition(":")
    words = body.split()
    if sep and head == "sort" and words and all(re.fullmatch(r"\d", w) for w in words):
        return "sort", words
    if sep and head == "reverse" and words and all(re.fullmatch(r"[a-z]", w) for w in words):
        return "reverse", words
    if sep and head == "add" and len(words) == 3 and words[1] == "+" and words[0].isdigit() and words[2].isdigit():
        return "add", [words[0], words[2]]
    if sep and head == "max" and words and all(w.isdigit() for w in words):
        return "max", words
    m = re.fullmatch(r"count ([a-z])", head)
    if sep and m and len(words) == 1 and words[0].isalpha():
        return "count", [m.group(1), words[0]]
    raise ValueError(f"not a sandbox prompt: {prompt!r}")


def gold_answer(prompt: str) -> str:
    """The one correct answer to a sandbox prompt, e.g. ``gold_answer("add: 23 + 45") == "68"``."""
    kind, ops = parse_prompt(prompt)
    if kind == "sort":
        return " ".join(sorted(ops))
    if kind == "reverse":
        return " ".join(reversed(ops))
    if kind == "add":
        return str(int(ops[0]) + int(ops[1]))
    if kind == "max":
        return str(max(int(x) for x in ops))
    return str(ops[1].count(ops[0]))


def _edit_distance(a: list[str], b: list[str]) -> int:
    """Optimal-string-alignment distance: substitutions, insertions, deletions and adjacent
    swaps each cost 1 (a swapped pair is one mistake, not two)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def split_answer(prompt: str, response: str) -> tuple[list[str], int]:
    """``(answer items, number of filler words)`` of a response.

    A word is an answer item if, stripped of punctuation, it looks like one for the task (a
    digit for sort, a lowercase letter for reverse, a number otherwise); any other word is
    filler. Number answers are compared digit by digit, with a separator item between numbers,
    so ``67`` for ``68`` is one wrong item and ``68 68`` has extra items.
    """
    kind, _ = parse_prompt(prompt)
    words = [w.strip(_PUNCT) for w in str(response).split()[:MAX_SCORED_WORDS]]
    pattern = {"sort": r"\d", "reverse": r"[a-z]"}.get(kind, r"\d+")
    hits = [w for w in words if re.fullmatch(pattern, w)]
    filler = len(words) - len(hits)
    if kind in LIST_KINDS:
        return hits, filler
    return list(" ".join(hits)), filler


def gold_score(prompt: str, response: str) -> float:
    """Deterministic 1-10 grade of ``response`` to ``prompt``.

    score = 10 - 3 * errors - 0.15 * max(0, filler_words - 3), clipped to [1, 10], where
    errors is the edit distance between the response's answer items and the gold items (one
    per wrong, missing, extra or adjacent-swapped item). A response with no answer item at all
    (empty, refusal, garbage) scores 1.0. Never raises on any response text; raises ValueError
    only if ``prompt`` is not a sandbox prompt.
    """
    items, filler = split_answer(prompt, response)
    if not items:
        return 1.0
    gold, _ = split_answer(prompt, gold_answer(prompt))
    errors = _edit_distance(items, gold)
    score = 10.0 - ITEM_PENALTY * errors - FILLER_PENALTY * max(0, filler - FREE_FILLER_WORDS)
    return float(min(10.0, max(1.0, score)))
