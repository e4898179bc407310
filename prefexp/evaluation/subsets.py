"""``eval.limit``: a seeded sample with every category in proportion, and the note that says so.

Taking the first N items is biased (MT-Bench's first 10 questions are all "writing";
AlpacaEval's are all "helpful_base"). Each category c of size n_c gets floor(N * n_c / total)
items, the remaining ones go to the largest remainders (ties: category name); within a
category the items are drawn with ``random.Random(f"{seed}:{category}")``. The sample keeps the
benchmark's order. A result computed on a sample carries ``subset`` in results.json and in the
printed line: it is not comparable to full-set numbers.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Callable, Optional, Sequence, TypeVar

T = TypeVar("T")


def quotas(sizes: dict[str, int], limit: int) -> dict[str, int]:
    total = sum(sizes.values())
    exact = {c: limit * n / total for c, n in sizes.items()}
    out = {c: math.floor(v) for c, v in exact.items()}
    left = limit - sum(out.values())
    for c in sorted(sizes, key=lambda c: (-(exact[c] - out[c]), c))[:left]:
        out[c] += 1
    return out


def stratified_sample(items: Sequence[T], category: Callable[[T], str], limit: Optional[int],
                      seed: int) -> list[T]:
    """``limit`` items, every category in proportion, in the input order; all items if no limit."""
    if limit is None or limit >= len(items):
        return list(items)
    positions: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        positions[str(category(item))].append(i)
    keep: list[int] = []
    for cat, k in quotas({c: len(p) for c, p in positions.items()}, limit).items():
        keep += random.Random(f"{seed}:{cat}").sample(positions[cat], k)
    return [items[i] for i in sorted(keep)]


def describe(items: Sequence[T], category: Callable[[T], str], n_total: int, seed: int,
             unit: str) -> Optional[dict]:
    """The ``subset`` record of results.json, or None for the full set."""
    if len(items) >= n_total:
        return None
    per_cat: dict[str, int] = defaultdict(int)
    for item in items:
        per_cat[str(category(item))] += 1
    return {"n": len(items), "of": n_total, "seed": seed, "per_category": dict(sorted(per_cat.items())),
            "note": f"subset: {len(items)} of {n_total} {unit} (eval.limit, seed {seed}, every category in "
                    f"proportion); not comparable to full-set numbers"}
