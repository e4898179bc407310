"""MT-Bench single-answer grading, written here after FastChat's ``llm_judge`` (Zheng et al.
2023, "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena"), because FastChat's judge module
does not import with current openai clients (../shared/docs/packages.md §5, beside the repository).

Faithful to FastChat 0.2.36 ``common.py`` / ``gen_judgment.py`` / ``show_result.py``:
* prompt choice: ``single-v1`` (turn 1) / ``single-v1-multi-turn`` (turn 2); for math, reasoning
  and coding ``single-math-v1`` / ``single-math-v1-multi-turn`` with the GPT-4 reference answer;
* messages: the prompt's system prompt, then the formatted user prompt; temperature 0;
* rating: regex ``\\[\\[(\\d+\\.?\\d*)\\]\\]``, fallback ``\\[(\\d+\\.?\\d*)\\]``, else -1; the number
  is read with ``float`` where FastChat used ``ast.literal_eval`` (which raises on ``[[07]]``), so
  no judge text can crash the parser and every rating FastChat accepts reads the same;
* scores: rows with -1 are dropped, then plain means over rows (the overall average is the mean
  over all remaining rows, not the mean of the two turn means).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Optional, Union

from .mt_bench_data import NEED_REF_CATS

ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
UNPARSEABLE = -1


def parse_rating(judgment: object) -> Union[int, float]:
    """``Rating: [[7]]`` -> 7; ``[[07]]`` -> 7; ``[8.5]`` -> 8.5 (fallback); anything else
    (``[[ 7 ]]``, ``Rating: 7``, free text, None) -> -1. Never raises."""
    if not isinstance(judgment, str):
        return UNPARSEABLE
    match = ONE_SCORE.search(judgment) or ONE_SCORE_BACKUP.search(judgment)
    if not match:
        return UNPARSEABLE
    text = match.group(1)
    value = float(text)  # the regex admits digits with at most one dot: always a valid float
    return int(value) if "." not in text else value


def prompt_name(category: str, turn: int) -> str:
    math = category in NEED_REF_CATS
    base = "single-math-v1" if math else "single-v1"
    return base + ("-multi-turn" if turn == 2 else "")


def build_messages(question: dict, answer_turns: list[str], prompt: dict, turn: int,
                   reference: Optional[dict]) -> tuple[list[dict], str]:
    """The judge's chat messages and the user prompt (stored with the judgment, as FastChat)."""
    kwargs = {}
    if reference is not None and prompt_name(question["category"], turn).startswith("single-math"):
        ref_turns = reference["choices"][0]["turns"]
        kwargs = {"ref_answer_1": ref_turns[0], "ref_answer_2": ref_turns[1]}
    if turn == 2:
        user = prompt["prompt_template"].format(
            question_1=question["turns"][0], question_2=question["turns"][1],
            answer_1=answer_turns[0], answer_2=answer_turns[1], **kwargs)
    else:
        user = prompt["prompt_template"].format(question=question["turns"][0], answer=answer_turns[0], **kwargs)
    messages = [{"role": "system", "content": prompt["system_prompt"]}, {"role": "user", "content": user}]
    return messages, user


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def score_judgments(rows: list[dict], categories: dict[int, str]) -> dict:
    """Scores per turn, per category and overall from FastChat-format judgment rows of one model.

    ``categories`` maps question_id -> category. Rows with score -1 are counted as unparseable
    and excluded from every mean (FastChat's show_result rule).
    """
    valid = [r for r in rows if r["score"] != UNPARSEABLE]
    by_turn: dict[int, list[float]] = defaultdict(list)
    by_cat: dict[str, list[float]] = defaultdict(list)
    for r in valid:
        by_turn[int(r["turn"])].append(r["score"])
        by_cat[categories[int(r["question_id"])]].append(r["score"])
    return {
        "score": _mean([r["score"] for r in valid]),
        "turn_1": _mean(by_turn[1]),
        "turn_2": _mean(by_turn[2]),
        "per_category": {c: _mean(v) for c, v in sorted(by_cat.items())},
        "n_judgments": len(rows),
        "n_unparseable": len(rows) - len(valid),
    }
