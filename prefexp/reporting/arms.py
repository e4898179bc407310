"""Arms: the runs of a sweep that differ only in ``seed``, pooled into mean, 95 % CI and n.

An arm is keyed by every override except ``seed`` (and except ``tau`` for runs that cannot read
it, ``axes.tau_is_used``: DPO at tau 0.5 and 1.0 is one arm). Only finished runs (status ok)
count; a seed that appears twice in one arm (the same run under an ignored tau) counts once.
Metrics: ``final/<key>`` (the last logged window, ``final_window``) and ``eval/<bench>/<metric>``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from .collect import RunRecord
from .stats import Estimate, mean_ci, paired_difference

NOT_ARM_KEYS = ("seed",)


@dataclass
class Arm:
    params: dict[str, str]  # the overrides that define it (tau left out when ignored)
    tau_used: bool
    runs: list[RunRecord] = field(default_factory=list)  # ok runs, one per seed
    failed: int = 0  # failed or incomplete runs of this arm
    duplicates: int = 0  # ok runs of a seed already counted
    tau_swept: bool = False  # some run of the sweep set tau: say when this arm ignores it
    shown: tuple[str, ...] = ()  # the keys that tell arms apart (the rest is common to the sweep)

    @property
    def label(self) -> str:
        text = ",".join(f"{k}={v}" for k, v in self.params.items() if k in self.shown) or "all runs"
        return f"{text} (ignores tau)" if self.tau_swept and not self.tau_used else text

    def values(self, metric: str) -> dict[str, float]:
        """seed (or run dir) -> value of ``metric`` in each counted run that has it."""
        out = {}
        for run in self.runs:
            value = run_value(run, metric)
            if value is not None:
                out[str(run.seed) if run.seed is not None else str(run.dir)] = value
        return out

    def estimate(self, metric: str) -> Estimate:
        return mean_ci(list(self.values(metric).values()))


def run_value(run: RunRecord, metric: str) -> Optional[float]:
    """``final/<key>``, ``eval/<bench>/<metric>`` or ``lr/<route>/<stat>`` of one run (None if absent)."""
    if metric.startswith("final/"):
        return run.final.get(metric[len("final/"):])
    if metric.startswith("eval/"):
        return run.eval.get(metric[len("eval/"):])
    if metric.startswith("lr/"):
        return run.route_lr.get(metric[len("lr/"):])
    raise ValueError(f"metric {metric!r} must start with final/, eval/ or lr/")


def arm_key(run: RunRecord) -> tuple[tuple[str, str], ...]:
    drop = set(NOT_ARM_KEYS) | (set() if run.tau_used else {"tau"})
    return tuple((k, v) for k, v in run.params.items() if k not in drop and not k.startswith("hydra."))


def group_arms(runs: Sequence[RunRecord]) -> list[Arm]:
    """Arms in order of first appearance (job order)."""
    arms: dict[tuple, Arm] = {}
    seen: dict[tuple, set] = {}
    tau_swept = any("tau" in r.params for r in runs)
    keys = dict.fromkeys(k for r in runs for k, _ in arm_key(r))
    shown = tuple(k for k in keys if k == "loss" or len({dict(arm_key(r)).get(k) for r in runs}) > 1)
    for run in runs:
        key = arm_key(run)
        arm = arms.setdefault(key, Arm(dict(key), run.tau_used, tau_swept=tau_swept, shown=shown))
        if run.status != "ok":
            arm.failed += 1
            continue
        seed = run.seed if run.seed is not None else str(run.dir)
        if seed in seen.setdefault(key, set()):
            arm.duplicates += 1
            continue
        seen[key].add(seed)
        arm.runs.append(run)
    return list(arms.values())


@dataclass(frozen=True)
class PairedComparison:
    arm: Arm
    difference: Estimate  # arm - baseline
    unit: str  # "seed" or "prompt"


def find_baseline(arms: Sequence[Arm], selector: str) -> Arm:
    """The one arm named ``selector``: its label, or ``key=value[,...]`` matching its params (e.g. ``loss=dpo``)."""
    named = [a for a in arms if a.label == selector]
    if len(named) == 1:
        return named[0]
    wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
    if not wanted:
        raise ValueError(f"--baseline {selector!r}: expected an arm's label or key=value[,key=value], e.g. loss=dpo")
    matches = [a for a in arms if all(a.params.get(k) == v for k, v in wanted.items())]
    if len(matches) != 1:
        raise ValueError(f"--baseline {selector!r} matches {len(matches)} arms ({[a.label for a in matches]}); "
                         f"arms: {[a.label for a in arms]}")
    return matches[0]


def default_baseline(arms: Sequence[Arm]) -> Optional[Arm]:
    """The sweep's obvious baseline: the one arm of plain DPO (loss=dpo, no router that changes
    it), preferring one without a curriculum when there are several; None when there is none or
    the choice is ambiguous (then ``--baseline`` names it)."""
    def plain(arm: Arm, curriculum_too: bool) -> bool:
        runs = arm.runs
        return bool(runs) and all(r.loss == "dpo" and not r.router_used for r in runs) and (
            not curriculum_too or all(r.curriculum in (None, "none") for r in runs))

    for strict in (False, True):
        found = [a for a in arms if plain(a, strict)]
        if len(found) == 1:
            return found[0]
        if not found:
            return None
    return None


def _per_prompt(arm: Arm, bench: str, name: str) -> dict[tuple[str, str], float]:
    """(seed, prompt id) -> the prompt's term of metric ``name``, over the arm's runs that record them."""
    return {(str(r.seed), prompt): score for r in arm.runs
            for prompt, score in r.per_prompt.get(bench, {}).get(name, {}).items()}


def paired_against(arms: Sequence[Arm], baseline: Arm, metric: str) -> list[PairedComparison]:
    """Each other arm minus the baseline, matched on the seed: one pair per seed (the spread over
    seeds includes training randomness: the claim about the method), and, when both record
    per-prompt terms of the metric, one pair per seed and prompt (only the held-out prompts'
    sampling: a claim about these trained checkpoints, much tighter)."""
    parts = metric.split("/", 2)
    bench, name = (parts[1], parts[2]) if metric.startswith("eval/") and len(parts) == 3 else (None, None)
    out = []
    for arm in arms:
        if arm is baseline:
            continue
        out.append(PairedComparison(arm, paired_difference(arm.values(metric), baseline.values(metric)), "seed"))
        base_prompts = _per_prompt(baseline, bench, name) if bench else {}
        arm_prompts = _per_prompt(arm, bench, name) if bench else {}
        if base_prompts and arm_prompts:
            out.append(PairedComparison(arm, paired_difference(arm_prompts, base_prompts), "seed x prompt"))
    return out
