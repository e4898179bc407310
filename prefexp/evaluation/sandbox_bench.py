"""Sandbox benchmark: the sandbox task's gold scorer as the judge, offline on CPU.

The policy (the checkpoint) and the reference model (the manifest's ``reference_model``, the
model DPO-style training regularises towards) answer the same held-out prompts; each answer gets
``gold_score(prompt, answer)`` in 1..10. Reported: the policy's win rate against the reference
(ties count half, in percent like AlpacaEval), its standard error, and both mean gold scores.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable

from .config import SandboxConfig
from .generation import GenRequest, describe, open_backend
from .manifest import Checkpoint
from .store import generation_meta, read_json, reusable, save_outputs

log = logging.getLogger(__name__)


def compare_with_gold(prompts: list[str], policy: list[str], reference: list[str],
                      gold_score: Callable[[str, str], float]) -> dict:
    """Win rate of ``policy`` over ``reference`` under ``gold_score``.

    win_i = 1 if g(p_i, policy_i) > g(p_i, ref_i), 0.5 if equal, else 0;
    win_rate = 100 * mean(win), standard_error = 100 * std(win, ddof=1) / sqrt(n).
    """
    g_pol = [float(gold_score(p, a)) for p, a in zip(prompts, policy)]
    g_ref = [float(gold_score(p, a)) for p, a in zip(prompts, reference)]
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(g_pol, g_ref)]
    n = len(wins)
    mean = sum(wins) / n
    var = sum((w - mean) ** 2 for w in wins) / (n - 1) if n > 1 else 0.0
    return {
        "win_rate": 100 * mean,
        "standard_error": 100 * math.sqrt(var / n),
        "mean_gold_score": sum(g_pol) / n,
        "reference_mean_gold_score": sum(g_ref) / n,
        "n_wins": sum(w == 1.0 for w in wins),
        "n_ties": sum(w == 0.5 for w in wins),
        "n_losses": sum(w == 0.0 for w in wins),
        "n_total": n,
    }


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
    from prefexp.sandbox.task import gold_score

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
    metrics = compare_with_gold(prompts, policy, reference, gold_score)
    return {
        "metrics": metrics,
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
