"""Sandbox benchmark: the sandbox task's gold scorer as the judge, offline on CPU.

The policy (the checkpoint) and the reference model (the manifest's ``reference_model``, the
model DPO-style training regularises towards) answer the same held-out prompts; each answer gets
``gold_score(prompt, answer)`` in 1..10. Reported: the policy's win rate against the reference
(ties count half, in percent like AlpacaEval), its standard error, both mean gold scores, the
paired per-prompt gold difference with its standard error, and all of these per task.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable, Optional

from .config import SandboxConfig
from .generation import GenRequest, describe, open_backend
from .manifest import Checkpoint
from .store import generation_meta, read_json, reusable, save_outputs

log = logging.getLogger(__name__)


def _mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (std with ddof=1 over sqrt(n); 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def _win(g_pol: float, g_ref: float) -> float:
    """One prompt's win term: 1 if the policy's gold score is higher, 0.5 if equal, else 0."""
    return 1.0 if g_pol > g_ref else 0.5 if g_pol == g_ref else 0.0


def gold_scores(prompts: list[str], answers: list[str], gold_score: Callable[[str, str], float]) -> list[float]:
    return [float(gold_score(p, a)) for p, a in zip(prompts, answers)]


def _summary(g_pol: list[float], g_ref: list[float]) -> dict:
    wins = [_win(a, b) for a, b in zip(g_pol, g_ref)]
    win, win_se = _mean_se(wins)
    diff, diff_se = _mean_se([a - b for a, b in zip(g_pol, g_ref)])
    n = len(wins)
    return {
        "win_rate": 100 * win,
        "standard_error": 100 * win_se,
        "mean_gold_score": sum(g_pol) / n,
        "reference_mean_gold_score": sum(g_ref) / n,
        "gold_difference": diff,
        "gold_difference_se": diff_se,
        "n_wins": sum(w == 1.0 for w in wins),
        "n_ties": sum(w == 0.5 for w in wins),
        "n_losses": sum(w == 0.0 for w in wins),
        "n_total": n,
    }


def compare_with_gold(prompts: list[str], policy: list[str], reference: list[str],
                      gold_score: Callable[[str, str], float],
                      task_of: Optional[Callable[[str], str]] = None) -> dict:
    """Win rate of ``policy`` over ``reference`` under ``gold_score``, and paired gold differences.

    win_i = 1 if g(p_i, policy_i) > g(p_i, ref_i), 0.5 if equal, else 0;
    win_rate = 100 * mean(win), standard_error = 100 * std(win, ddof=1) / sqrt(n);
    d_i = g(p_i, policy_i) - g(p_i, ref_i): gold_difference = mean(d), gold_difference_se =
    std(d, ddof=1) / sqrt(n) (paired: the per-prompt difficulty cancels).
    With ``task_of`` (prompt -> task name), ``by_task`` holds the same numbers per task.
    """
    return summarize_gold(prompts, gold_scores(prompts, policy, gold_score), gold_scores(prompts, reference, gold_score),
                          task_of)


def summarize_gold(prompts: list[str], g_pol: list[float], g_ref: list[float],
                   task_of: Optional[Callable[[str], str]] = None) -> dict:
    """:func:`compare_with_gold` from the gold scores of the two models' answers."""
    out = _summary(g_pol, g_ref)
    if task_of is not None:
        tasks: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            tasks.setdefault(task_of(p), []).append(i)
        out["by_task"] = {t: _summary([g_pol[i] for i in idx], [g_ref[i] for i in idx])
                          for t, idx in sorted(tasks.items())}
    return out


def per_prompt_scores(prompts: list[str], g_pol: list[float], g_ref: list[float]) -> dict[str, dict[str, float]]:
    """metric -> {prompt: this prompt's term}: the terms whose mean is the metric (``win_rate``:
    100 / 50 / 0 for a win / tie / loss; ``mean_gold_score``: the policy's gold score), so that a
    report can pair two runs prompt by prompt (the same held-out prompts in every run)."""
    return {"win_rate": {p: 100.0 * _win(a, b) for p, a, b in zip(prompts, g_pol, g_ref)},
            "mean_gold_score": dict(zip(prompts, g_pol))}


def _answers(cfg: SandboxConfig, model_dir: str, chat_template, identity: dict, prompts: list[str],
             path: Path) -> list[str]:
    """Answers of one model, saved to ``path`` and reused while identity and settings match."""
    g = cfg.generation
    meta = generation_meta(identity, describe(g))
    saved = {r["prompt"]: r["output"] for r in read_json(path)} if reusable(path, meta, g.regenerate) else {}
    todo = [p for p in prompts if p not in saved]
    if todo:
        log.info("sandbox: %s answers %d prompts (%d reused)", model_dir, len(todo), len(saved))
        with open_backend(g, model_dir, chat_template, path.parent) as backend:
            outs = backend.generate([GenRequest.chat([{"role": "user", "content": p}], g.temperature,
                                                     g.max_new_tokens, g.top_p) for p in todo])
        saved.update(zip(todo, outs))
        save_outputs(path, [{"prompt": p, "output": o} for p, o in saved.items()], meta)
    return [saved[p] for p in prompts]


def run(cfg: SandboxConfig, ckpt: Checkpoint, out_dir: Path) -> dict:
    # Imported here: the sandbox task is another stage's module and may not be installed.
    from prefexp.sandbox.data import heldout_prompts
    from prefexp.sandbox.task import gold_score, parse_prompt

    ref_name = cfg.reference_model or ckpt.manifest.get("reference_model")
    if not ref_name:
        raise ValueError("the sandbox benchmark needs a reference model: the manifest has no "
                         "reference_model; set eval.reference_model")
    ref_dir = ckpt.resolve_model(ref_name)
    prompts = heldout_prompts(cfg.n_prompts, cfg.prompt_seed)
    prompts = prompts[: cfg.limit] if cfg.limit is not None else prompts
    policy = _answers(cfg, str(ckpt.model_dir), ckpt.chat_template, ckpt.describe(), prompts,
                      out_dir / "model_outputs.json")
    # The reference model may lack a chat template (a base model): format it like the policy.
    reference = _answers(cfg, ref_dir, ckpt.chat_template, {"reference_model": ref_name}, prompts,
                         out_dir / "reference_outputs.json")
    g_pol, g_ref = gold_scores(prompts, policy, gold_score), gold_scores(prompts, reference, gold_score)
    return {
        "metrics": summarize_gold(prompts, g_pol, g_ref, task_of=lambda p: parse_prompt(p)[0]),
        "per_prompt": per_prompt_scores(prompts, g_pol, g_ref),
        "model_name": cfg.model_name or ckpt.default_model_name(),
        "n_items": len(prompts),
        "data": {"source": "prefexp.sandbox.data.heldout_prompts", "n_prompts": cfg.n_prompts,
                 "seed": cfg.prompt_seed},
        "judge": {"kind": "gold_score", "function": "prefexp.sandbox.task.gold_score",
                  "reference_model": ref_name},
        "generation": describe(cfg.generation),
        "files": {"model_outputs": "model_outputs.json", "reference_outputs": "reference_outputs.json"},
        "notes": [],
    }
