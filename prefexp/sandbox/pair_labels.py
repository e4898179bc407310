"""What a sandbox preference pair is, by the gold scorer: the premise table behind routing.

A rated pair is one of four kinds against the gold grade (``prefexp.sandbox.task.gold_score``):

* ``correct``: gold(chosen) > gold(rejected), the rater ordered it right;
* ``mislabelled``: gold(chosen) < gold(rejected), training on it pushes the wrong way;
* ``tie_equal``: equal gold and the same answer items (the responses differ in filler only);
* ``tie_different``: equal gold but different answers (e.g. two equally wrong answers), where
  SFT on the chosen side imitates one wrong answer among several.

``chosen_exact``: the chosen response's answer items are the gold answer's (filler aside).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..data.records import PreferencePair
from .task import gold_answer, split_answer

KINDS = ("correct", "mislabelled", "tie_equal", "tie_different")


@dataclass(frozen=True)
class GoldLabel:
    kind: str  # one of KINDS
    chosen_exact: bool


def _prompt_text(pair: PreferencePair) -> str:
    return pair.prompt[-1]["content"]  # the sandbox prompt is the single user turn


def gold_label(prompt: str, chosen: str, rejected: str, gold_chosen: float, gold_rejected: float) -> GoldLabel:
    chosen_items, _ = split_answer(prompt, chosen)
    if gold_chosen > gold_rejected:
        kind = "correct"
    elif gold_chosen < gold_rejected:
        kind = "mislabelled"
    else:
        kind = "tie_equal" if chosen_items == split_answer(prompt, rejected)[0] else "tie_different"
    return GoldLabel(kind, chosen_items == split_answer(prompt, gold_answer(prompt))[0])


def gold_labels(pairs: Sequence[PreferencePair]) -> dict[int, GoldLabel]:
    """Pair index -> its label; pairs without gold scores (not sandbox rows) are left out."""
    return {p.index: gold_label(_prompt_text(p), p.chosen, p.rejected, p.extra["gold_chosen"], p.extra["gold_rejected"])
            for p in pairs if "gold_chosen" in p.extra and "gold_rejected" in p.extra}
