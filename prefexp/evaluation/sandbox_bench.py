"""Sandbox benchmark: the sandbox task's gold scorer as the judge, offline on CPU.

The policy (the checkpoint) and the reference model (the manifest's ``reference_model``, the
model DPO-style training regularises towards) answer the same held-out prompts; each answer gets
``gold_score(prompt, answer)`` in 1..10. Reported: the policy's win rate against the reference
(ties count half, in percent like AlpacaEval), its standard error, both mean gold scores, the
paired per-prompt gold difference with its standard error, and all of these per task.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Callable, Optional

from .config import GenerationConfig, SandboxConfig
from .generation import describe
from .manifest import Checkpoint
from .reference_answers import cached_reference_answers, generate_answers
from .store import generation_meta, read_json, reusable, save_outputs

log = logging.getLogger(__name__)

Z95 = 1.959964  # normal 97.5 % quantile: the 95 % intervals are mean +- Z95 * SE


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


def _prompt_means(values: list[float], k: int) -> list[float]:
    """Each prompt's mean over its ``k`` consecutive answers (prompt-major layout)."""
    return [sum(values[i:i + k]) / k for i in range(0, len(values), k)]


def _summary(g_pol: list[float], g_ref: list[float], k: int = 1) -> dict:
    """Headline numbers of paired gold scores; ``k`` answers per prompt, prompt-major (prompt i owns
    entries i*k .. i*k+k-1). The prompt is the unit of the standard errors: each prompt's k win terms
    and differences are averaged first (k = 1: the plain per-answer statistics)."""
    wins = [_win(a, b) for a, b in zip(g_pol, g_ref)]
    win, win_se = _mean_se(_prompt_means(wins, k))
    diff, diff_se = _mean_se(_prompt_means([a - b for a, b in zip(g_pol, g_ref)], k))
    n = len(wins)
    ties = sum(w == 0.5 for w in wins)
    return {
        "win_rate": 100 * win,
        "standard_error": 100 * win_se,
        "win_rate_ci95_low": 100 * (win - Z95 * win_se),
        "win_rate_ci95_high": 100 * (win + Z95 * win_se),
        "tie_share": ties / n,
        "mean_gold_score": sum(g_pol) / n,
        "reference_mean_gold_score": sum(g_ref) / n,
        "gold_difference": diff,
        "gold_difference_se": diff_se,
        "gold_difference_ci95_low": diff - Z95 * diff_se,
        "gold_difference_ci95_high": diff + Z95 * diff_se,
        "n_wins": sum(w == 1.0 for w in wins),
        "n_ties": ties,
        "n_losses": sum(w == 0.0 for w in wins),
        "n_total": n,
        "n_prompts": n // k,
        "answers_per_prompt": k,
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
                   task_of: Optional[Callable[[str], str]] = None, k: int = 1) -> dict:
    """:func:`compare_with_gold` from the gold scores of the two models' answers (``k`` per prompt,
    prompt-major; ``prompts`` has one entry per prompt)."""
    out = _summary(g_pol, g_ref, k)
    if task_of is not None:
        tasks: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            tasks.setdefault(task_of(p), []).extend(range(i * k, i * k + k))
        out["by_task"] = {t: _summary([g_pol[i] for i in idx], [g_ref[i] for i in idx], k)
                          for t, idx in sorted(tasks.items())}
    return out


def per_prompt_scores(prompts: list[str], g_pol: list[float], g_ref: list[float], k: int = 1) -> dict[str, dict[str, float]]:
    """metric -> {prompt: this prompt's term}: the terms whose mean is the metric (``win_rate``:
    100 / 50 / 0 for a win / tie / loss, averaged over the prompt's ``k`` answers;
    ``mean_gold_score``: the policy's mean gold score), so that a report can pair two runs prompt
    by prompt (the same held-out prompts in every run)."""
    wins = _prompt_means([100.0 * _win(a, b) for a, b in zip(g_pol, g_ref)], k)
    return {"win_rate": dict(zip(prompts, wins)), "mean_gold_score": dict(zip(prompts, _prompt_means(g_pol, k)))}


def _answers(g: GenerationConfig, model_dir: str, chat_template, identity: dict, prompts: list[str], k: int,
             path: Path) -> list[str]:
    """``k`` answers per prompt (prompt-major) of one model under the settings ``g``, saved to
    ``path`` and reused while identity and settings match. Rows: prompt, sample (0..k-1), output."""
    meta = generation_meta(identity, describe(g))
    saved = ({(r["prompt"], r.get("sample", 0)): r["output"] for r in read_json(path)}
             if reusable(path, meta, g.regenerate) else {})
    keys = [(p, j) for p in prompts for j in range(k)]
    todo = [key for key in keys if key not in saved]
    if todo:
        log.info("sandbox: %s answers %d prompts x samples (%d reused, temperature %g)", model_dir, len(todo),
                 len(saved), g.temperature)
        outs = generate_answers(g, model_dir, chat_template, [p for p, _ in todo], path.parent)
        saved.update(zip(todo, outs))
        save_outputs(path, [{"prompt": p, "sample": j, "output": o} for (p, j), o in saved.items()], meta)
    return [saved[key] for key in keys]


def _reference(cfg: SandboxConfig, g: GenerationConfig, ref_dir: str, ref_name: str, chat_template,
               prompts: list[str], k: int, path: Path) -> list[str]:
    """The reference's answers: from the cache shared by every run (``eval.cache_dir``), copied
    into the eval dir like the policy's; without a cache dir, generated in the eval dir."""
    if not cfg.cache_dir:
        return _answers(g, ref_dir, chat_template, {"reference_model": ref_name}, prompts, k, path)
    answers, _ = cached_reference_answers(Path(cfg.cache_dir), g, ref_dir, chat_template, prompts, k, path.parent)
    rows = [{"prompt": p, "sample": j, "output": answers[i * k + j]} for i, p in enumerate(prompts) for j in range(k)]
    save_outputs(path, rows, generation_meta({"reference_model": ref_name}, describe(g)))
    return answers


def decoding_settings(cfg: SandboxConfig, decoding: str) -> tuple[GenerationConfig, int]:
    """(generation settings, answers per prompt) of one protocol: greedy as configured, or sampled
    at ``sample_temperature`` with ``samples_per_prompt`` answers."""
    if decoding == "greedy":
        return cfg.generation, 1
    return dataclasses.replace(cfg.generation, temperature=cfg.sample_temperature), cfg.samples_per_prompt


def output_files(decoding: str) -> dict[str, str]:
    suffix = "" if decoding == "greedy" else f".{decoding}"  # greedy keeps the historical names
    return {"model_outputs": f"model_outputs{suffix}.json", "reference_outputs": f"reference_outputs{suffix}.json"}


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
    metrics, per_prompt, generation, files = {}, {}, {}, {}
    for decoding in cfg.decoding:
        g, k = decoding_settings(cfg, decoding)
        names = output_files(decoding)
        policy = _answers(g, str(ckpt.model_dir), ckpt.chat_template, ckpt.describe(), prompts, k,
                          out_dir / names["model_outputs"])
        # The reference model may lack a chat template (a base model): format it like the policy.
        reference = _reference(cfg, g, ref_dir, ref_name, ckpt.chat_template, prompts, k,
                               out_dir / names["reference_outputs"])
        many = [p for p in prompts for _ in range(k)]
        g_pol, g_ref = gold_scores(many, policy, gold_score), gold_scores(many, reference, gold_score)
        metrics[decoding] = summarize_gold(prompts, g_pol, g_ref, task_of=lambda p: parse_prompt(p)[0], k=k)
        for metric, terms in per_prompt_scores(prompts, g_pol, g_ref, k).items():
            per_prompt[metric if decoding == cfg.headline else f"{decoding}/{metric}"] = terms
        generation[decoding], files[decoding] = {**describe(g), "answers_per_prompt": k}, names
    return {
        # the headline protocol's numbers at the top level (eval/sandbox/win_rate), every protocol nested
        "metrics": {**metrics[cfg.headline], **metrics, "headline": cfg.headline},
        "per_prompt": per_prompt,
        "model_name": cfg.model_name or ckpt.default_model_name(),
        "n_items": len(prompts),
        "data": {"source": "prefexp.sandbox.data.heldout_prompts", "n_prompts": cfg.n_prompts,
                 "seed": cfg.prompt_seed},
        "judge": {"kind": "gold_score", "function": "prefexp.sandbox.task.gold_score",
                  "reference_model": ref_name},
        "generation": {**generation[cfg.headline], "protocols": generation},
        "files": {**files[cfg.headline], "protocols": files},
        "notes": [],
    }
