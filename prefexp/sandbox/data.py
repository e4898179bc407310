"""Preference data for the sandbox task, rated by a noisy, length-biased "LLM judge".

For each prompt, K responses come from one of two sources (``responses``):

- ``reference_samples`` (the config default): K samples of the reference model itself
  (prefexp.sandbox.samples), as on-policy preference data is made;
- ``synthetic``: the gold answer with k in 0..3 corruptions (adjacent swap, wrong item, dropped
  item, extra item), some wrapped in filler ("Sure! Here it is: ..."), so that verbosity and
  correctness are separable. The reference model's SFT corpus is made this way.

    gold_i  = gold_score(prompt, response_i)                                 (task.py)
    rater_i = round_half(clip(gold_i + N(0, rater_noise^2) + length_bias * bonus_i, 1, 10))
    bonus_i = min(filler_words_i, 12) / 4                                    (0 .. 3)

Rounding to halves mimics UltraFeedback's GPT-4 ratings and gives exact ties; the noise gives
small-margin pairs whose order disagrees with the gold score. Pairs follow the UltraFeedback
binarized rule: chosen = best rated (ties: lowest index), rejected = a random other response
(``best_vs_random``) or the worst rated (``best_vs_worst``; ties: lowest index).
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from .task import LIST_KINDS, generate_prompts, gold_answer, gold_score, make_prompts, parse_prompt, split_answer

PAIR_RULES = ("best_vs_random", "best_vs_worst")
RESPONSE_SOURCES = ("synthetic", "reference_samples")
# P(k corruptions), k = 0..3. Mostly-correct responses dominate, as in a decent SFT model's
# samples; tuned so that ~15% of best_vs_random pairs tie (margin 0) at the defaults.
CORRUPTION_WEIGHTS = (0.45, 0.25, 0.2, 0.1)
FILLER_PROB = 0.5
# No digits and no single lowercase letters: filler must never look like an answer item.
PREFIXES = ("Sure!", "Answer:", "Sure! Here it is:", "Of course. The answer is",
            "Happy to help! The result is", "Let me work this out. The answer is")
SUFFIXES = ("Hope this helps!", "Anything else?", "Done.")
DEFAULT_BUCKETS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, math.inf)


def _corrupt(prompt: str, k: int, rng: random.Random) -> str:
    """The gold answer with ``k`` random edits (the result may have fewer than k errors)."""
    kind, _ = parse_prompt(prompt)
    is_list = kind in LIST_KINDS
    items = gold_answer(prompt).split() if is_list else list(gold_answer(prompt))
    pool = "abcdefghijklmnopqrstuvwxyz" if kind == "reverse" else "0123456789"
    for _ in range(k):
        op = rng.choice(("swap", "replace", "drop", "insert") if is_list else ("replace", "drop", "insert"))
        if op == "swap" and len(items) >= 2:
            i = rng.randrange(len(items) - 1)
            items[i], items[i + 1] = items[i + 1], items[i]
        elif op == "drop" and len(items) >= 2:
            del items[rng.randrange(len(items))]
        elif op == "insert":
            items.insert(rng.randrange(len(items) + 1), rng.choice(pool))
        else:  # replace (also the fallback when a swap or drop is impossible)
            i = rng.randrange(len(items))
            items[i] = rng.choice([c for c in pool if c != items[i]])
    return " ".join(items) if is_list else "".join(items)


def _draw_response(prompt: str, rng: random.Random) -> str:
    answer = _corrupt(prompt, rng.choices(range(4), weights=CORRUPTION_WEIGHTS)[0], rng)
    if rng.random() >= FILLER_PROB:
        return answer
    text = f"{rng.choice(PREFIXES)} {answer}"
    return f"{text} {rng.choice(SUFFIXES)}" if rng.random() < 0.4 else text


def _round_half(x: float) -> float:
    return math.floor(x * 2 + 0.5) / 2


def rate(prompt: str, response: str, rng: random.Random, rater_noise: float, length_bias: float) -> float:
    """One noisy, length-biased rater score in {1, 1.5, ..., 10} (see the module docstring)."""
    _, filler = split_answer(prompt, response)
    raw = gold_score(prompt, response) + rng.gauss(0.0, rater_noise) + length_bias * min(filler, 12) / 4
    return _round_half(min(10.0, max(1.0, raw)))


def _distinct_synthetic(prompt: str, rng: random.Random, k: int) -> list[str]:
    responses: list[str] = []
    while len(responses) < k:
        # Distinct responses, so chosen and rejected can never be the same string; a few
        # re-draws suffice (even count prompts have dozens of distinct corrupted/filled texts).
        r = _draw_response(prompt, rng)
        for _ in range(50):
            if r not in responses:
                break
            r = _draw_response(prompt, rng)
        else:
            r = next(f"{p} {r} {s}" for p in PREFIXES for s in SUFFIXES if f"{p} {r} {s}" not in responses)
        responses.append(r)
    return responses


def rate_and_pair(prompt: str, responses: list[str], rng: random.Random, rater_noise: float, length_bias: float,
                  pair_rule: str) -> Optional[dict]:
    """One preference row from a prompt's K responses: rate all of them, pick the pair.

    chosen = best rated (ties: lowest index); rejected = a random response of another text
    (``best_vs_random``) or the worst rated one (``best_vs_worst``; ties: lowest index), both
    among the non-empty responses. All K responses stay in the row (duplicates and empty samples
    included). None when fewer than two distinct non-empty texts exist (no pair can be formed).
    """
    rater = [rate(prompt, r, rng, rater_noise, length_bias) for r in responses]
    gold = [gold_score(prompt, r) for r in responses]
    # An empty sample (eos first) is a real answer and stays in ``responses``, but a pair needs
    # two texts: prefexp.data.records rejects an empty chosen or rejected.
    texts = [i for i in range(len(responses)) if responses[i].strip()]
    if not texts:
        return None
    best = max(texts, key=lambda i: (rater[i], -i))
    others = [i for i in texts if responses[i] != responses[best]]
    if not others:
        return None
    if pair_rule == "best_vs_random":
        worse = rng.choice(others)
    else:
        worse = min(others, key=lambda i: (rater[i], i))
    return {"prompt": prompt, "chosen": responses[best], "rejected": responses[worse],
            "score_chosen": rater[best], "score_rejected": rater[worse],
            "gold_chosen": gold[best], "gold_rejected": gold[worse],
            "responses": responses, "rater_scores": rater, "gold_scores": gold}


def _check(responses_per_prompt: int, rater_noise: float, pair_rule: str, responses: str) -> None:
    if responses_per_prompt < 2:
        raise ValueError(f"responses_per_prompt={responses_per_prompt} must be >= 2 to form a pair")
    if pair_rule not in PAIR_RULES:
        raise ValueError(f"pair_rule={pair_rule!r} is not one of {PAIR_RULES}")
    if rater_noise < 0:
        raise ValueError(f"rater_noise={rater_noise} must be >= 0")
    if responses not in RESPONSE_SOURCES:
        raise ValueError(f"responses={responses!r} is not one of {RESPONSE_SOURCES}")


def build_sandbox_rows(num_prompts: int, seed: int, responses_per_prompt: int = 4, rater_noise: float = 0.75,
                       length_bias: float = 0.3, pair_rule: str = "best_vs_random", responses: str = "synthetic",
                       model_dir: Optional[Union[str, Path]] = None, temperature: float = 1.0) -> list[dict]:
    """Preference rows for ``num_prompts`` training prompts; a pure function of the arguments.

    Args:
        num_prompts: prompts to draw (distinct); one row each, except that with sampled
            responses a prompt whose K samples are all the same text gives no row.
        seed: drives prompts, responses (synthetic draws or the sampling seed), rater noise and
            the random rejected pick.
        responses_per_prompt: K >= 2 responses per prompt.
        rater_noise: sigma of the rater's Gaussian error, in score points (>= 0).
        length_bias: rater bonus per unit of filler bonus (0..3 for 0..12 filler words).
        pair_rule: ``best_vs_random`` or ``best_vs_worst``.
        responses: ``synthetic`` (gold answers with random corruptions and filler, distinct) or
            ``reference_samples`` (K samples of the model in ``model_dir`` at ``temperature``;
            prefexp.sandbox.samples, cached beside the model).

    Returns dicts with ``prompt, chosen, rejected, score_chosen, score_rejected, gold_chosen,
    gold_rejected, responses, rater_scores, gold_scores``; always chosen != rejected and
    score_chosen >= score_rejected. With synthetic responses row i depends only on (seed, i,
    prompt i), so a smaller ``num_prompts`` gives a prefix of the rows.
    """
    _check(responses_per_prompt, rater_noise, pair_rule, responses)
    prompts = make_prompts(num_prompts, seed)
    sampled = None
    if responses == "reference_samples":
        if model_dir is None:
            raise ValueError("responses='reference_samples' needs model_dir (the reference model to sample)")
        from .samples import ensure_reference_samples  # torch: only on this path

        sampled = ensure_reference_samples(Path(model_dir), prompts, responses_per_prompt, temperature, seed)
    rows = []
    for i, prompt in enumerate(prompts):
        rng = random.Random(f"sandbox-row-{seed}-{i}")  # synthetic draws, then rater noise, then the pick
        texts = sampled[i] if sampled is not None else _distinct_synthetic(prompt, rng, responses_per_prompt)
        row = rate_and_pair(prompt, texts, rng, rater_noise, length_bias, pair_rule)
        if row is not None:
            rows.append(row)
    return rows


def heldout_prompts(n: int, seed: int) -> list[str]:
    """``n`` evaluation prompts, disjoint from every :func:`build_sandbox_rows` prompt (any seed)."""
    return generate_prompts(n, seed, heldout=True)


def label_noise_report(rows: Iterable[dict], buckets: Sequence[float] = DEFAULT_BUCKETS) -> list[dict]:
    """Share of pairs the rater got wrong (gold_chosen < gold_rejected), per rating-margin bucket.

    ``buckets`` are increasing edges; bucket j holds pairs with margin
    ``score_chosen - score_rejected`` in ``[buckets[j], buckets[j+1])``. Each result dict has
    ``low, high, pairs, mislabelled, gold_ties, share`` (share = mislabelled / pairs, or None
    for an empty bucket). Gold ties (equal gold scores) count as neither right nor wrong.
    """
    edges = list(buckets)
    if len(edges) < 2 or any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"buckets={edges} must be at least two strictly increasing edges")
    out = [{"low": lo, "high": hi, "pairs": 0, "mislabelled": 0, "gold_ties": 0} for lo, hi in zip(edges, edges[1:])]
    for r in rows:
        margin = r["score_chosen"] - r["score_rejected"]
        for b in out:
            if b["low"] <= margin < b["high"]:
                b["pairs"] += 1
                b["mislabelled"] += r["gold_chosen"] < r["gold_rejected"]
                b["gold_ties"] += r["gold_chosen"] == r["gold_rejected"]
                break
    for b in out:
        b["share"] = b["mislabelled"] / b["pairs"] if b["pairs"] else None
    return out
