"""Stage 3, plan: route, weight and order the pairs; write routing_plan.jsonl,
routing_summary.json and margins.png once, complete."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config import layout
from ..config.schema import TrainConfig
from ..config.settings import Settings
from ..difficulty.metrics import loss_metric
from ..difficulty.plan import PlanEntry, gold_composition, make_plan, plot_histogram, summarize, write_plan
from ..difficulty.router import RouterSpec, select
from ..difficulty.stages import staged_plan
from ..engine.distributed import is_main_process
from .difficulty import Margins
from .load import PairData

log = logging.getLogger(__name__)


def plan_training(settings: Settings, data: PairData, margins: Margins, run_dir: Path) -> list[PlanEntry]:
    """The kept entries in training order (the discarded ones are only counted in the summary)."""
    c, loss = settings.config, settings.loss
    spec = settings.router
    by_router = margins.by_metric.get(c.router.metric)
    router_margins = [by_router[p.index] for p in data.pairs] if by_router is not None else [None] * len(data.pairs)
    branch = loss.preference_branch or settings.loss_name
    kept, discarded = make_plan(data.pairs, router_margins, spec, c.curriculum.order, c.seed, branch,
                                loss.routes_pairs)
    by_loss = loss_metric(c, loss)
    if by_loss is not None and by_loss != c.router.metric:  # the loss reads another metric: record both
        for entry in [*kept, *discarded]:
            entry.loss_margin = margins.by_metric[by_loss][entry.index]
    summary = {**summarize(kept, discarded, spec, c.router.metric, c.curriculum.order, pairs=data.pairs),
               **data.summary, "gold_composition": pair_composition(c, data, [*kept, *discarded])}
    planned = kept  # each pair once (the histogram); with stages `kept` becomes the training sequence
    if c.curriculum.stages:  # stages in turn, each a pass (or several) over its routes' entries
        kept, sizes = staged_plan(kept, c.curriculum.stages)
        summary["stages"] = sizes
        log.info("curriculum.stages: %s pairs per stage (%d in all, plan order inside each stage)", sizes, len(kept))
    if is_main_process():  # every rank plans (the same result); rank 0 writes
        write_plan(kept, run_dir / layout.ROUTING_PLAN, c.router.metric)
        (run_dir / layout.ROUTING_SUMMARY).write_text(json.dumps(summary, indent=2))
        if any(m is not None for m in router_margins):
            plot_histogram(planned, discarded, summary, run_dir / layout.MARGINS_PLOT, histogram_cut(spec, router_margins))
    log.info("routing plan: %d pairs, routes %s, router=%s tau=%g metric=%s order=%s", summary["pairs"],
             summary["routes"], spec.name, c.tau, c.router.metric, c.curriculum.order)
    if not kept:
        raise ValueError(f"router={spec.name} with tau={c.tau} leaves no pair to train on; "
                         f"see {run_dir / layout.ROUTING_SUMMARY}")
    return kept


NO_GOLD = ("no gold scorer for dataset.source={source}: the table needs gold grades of chosen and rejected, "
           "which only the sandbox task has (prefexp/sandbox/pair_labels.py)")


def pair_composition(c: TrainConfig, data: PairData, entries: list[PlanEntry]) -> dict:
    """Gold composition of the pairs by margin bucket and route (sandbox), or why it is absent."""
    if c.dataset.source != "sandbox":
        return {"absent": NO_GOLD.format(source=c.dataset.source)}
    from ..sandbox.pair_labels import KINDS, gold_labels  # the sandbox's gold scorer

    return gold_composition(entries, gold_labels(data.pairs), KINDS)


def histogram_cut(spec: RouterSpec, margins: list) -> float | None:
    """The margin drawn as the cut: tau for the threshold router, the largest selected for quantile."""
    if spec.name == "threshold":
        return spec.tau
    if spec.name == "quantile":
        selected = [m for m, s in zip(margins, select(margins, spec)) if s]
        return max(selected) if selected else None
    return None
