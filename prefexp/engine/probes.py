"""Likelihood displacement probes: log-probs of chosen and rejected on fixed probe sets, over training.

Every ``every_n_steps`` optimizer steps (``trainer.probes.every_n_steps``) (and before the first, and after the last) the callback
forwards fixed probe pairs through the policy, without gradients and in eval mode, and appends one
row to ``<run dir>/probes.jsonl``:

    {"step": 40, "learning_rate": 4.1e-4,
     "probe/difficult/chosen": -31.2, "probe/difficult/rejected": -33.0,   # mean summed log-prob
     "probe/difficult/chosen_per_token": -1.9, "probe/difficult/rejected_per_token": -2.1,
     "probe/difficult/margin": 1.8, "probe/difficult/n": 32, "probe/easy/...": ...}

``learning_rate`` is the rate the update of that step used (read before the step). The probe sets
do not depend on the loss or the router: ``probe_sets`` draws a fixed sample of *all* pairs, by
the difficulty cut on the rating margin (difficult: margin < the router's cut, ``difficulty_cut``), with a fixed seed, so
DPO, MixDPO and a run that discards difficult pairs are probed on the same pairs.

At the end of training it also writes ``route_learning_rates.json``: for each label of the
training order (e.g. difficult / easy), the learning rates its pairs were trained at (mean, min,
max, and the mean as a fraction of the peak), which is how a curriculum meets the schedule: with
easy_to_hard and a cosine decay the difficult pairs come last, at a small fraction of the peak.
That accounting assumes the sequential sampler the engine uses (the plan order is the training
order; ``pairs_per_step`` pairs per optimizer step over all ranks; each epoch restarts the order).

Every rank computes the probes (a ZeRO-3 forward needs all ranks); only the main process writes.
"""
from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
from transformers import TrainerCallback

from ..config import layout
from .batching import PairCollator
from .logps import forward_logps

PROBE_SEED = 0  # the same probe pairs in every run of a sweep


def difficulty_label(margin: Optional[float], tau: float) -> Optional[str]:
    if margin is None or (isinstance(margin, float) and math.isnan(margin)):
        return None
    return "difficult" if margin < tau else "easy"


def probe_sets(examples: Sequence[dict], margin_of: Mapping[int, Optional[float]], tau: float,
               per_set: int = 32, seed: int = PROBE_SEED) -> dict[str, list[dict]]:
    """{"difficult": [...], "easy": [...]}: up to ``per_set`` tokenised pairs each, a seeded sample
    (by original row index, so independent of the training order). Pairs without a margin: "all"."""
    by_label: dict[str, list[dict]] = defaultdict(list)
    for example in sorted(examples, key=lambda e: e["index"]):
        label = difficulty_label(margin_of.get(example["index"]), tau)
        by_label[label or "all"].append(example)
    rng = random.Random(seed)
    return {label: sorted(rng.sample(rows, min(per_set, len(rows))), key=lambda e: e["index"])
            for label, rows in sorted(by_label.items())}


def training_labels(indices_in_order: Sequence[int], margin_of: Mapping[int, Optional[float]], tau: float) -> list[str]:
    """The difficulty label of every pair in training order (for ``route_learning_rates.json``)."""
    return [difficulty_label(margin_of.get(i), tau) or "all" for i in indices_in_order]


@torch.no_grad()
def probe_logps(model, examples: Sequence[dict], pad_token_id: int, batch_size: int = 32) -> dict[str, float]:
    """Mean summed and per-token log-probs of chosen and rejected over ``examples``."""
    collate = PairCollator(pad_token_id)
    device = next(model.parameters()).device
    sums = defaultdict(float)
    for start in range(0, len(examples), batch_size):
        chunk = [{k: e[k] for k in ("index", "prompt_ids", "chosen_ids", "rejected_ids")}
                 for e in examples[start:start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        logps, lengths = forward_logps(model, batch)  # [2B], [2B]
        n = len(chunk)
        sums["chosen"] += logps[:n].sum().item()
        sums["rejected"] += logps[n:].sum().item()
        sums["chosen_per_token"] += (logps[:n] / lengths[:n].clamp(min=1)).sum().item()
        sums["rejected_per_token"] += (logps[n:] / lengths[n:].clamp(min=1)).sum().item()
    out = {k: v / len(examples) for k, v in sums.items()}
    out["margin"] = out["chosen"] - out["rejected"]
    return out


class ProbeCallback(TrainerCallback):
    """Appends probe rows to ``path`` (see the module docstring); plain inputs only.

    model: the policy being trained; probes: {set name: tokenised pairs} (``probe_sets``);
    labels_in_order / pairs_per_step: the training order's labels (``training_labels``) and the
    pairs per optimizer step (batch x accumulation x ranks), for ``route_learning_rates.json``
    (None: not written)."""

    def __init__(self, model, probes: Mapping[str, Sequence[dict]], pad_token_id: int, path: Path,
                 every_n_steps: int, labels_in_order: Optional[Sequence[str]] = None,
                 pairs_per_step: Optional[int] = None, batch_size: int = 32, is_main_process: bool = True):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1")
        self.model, self.probes, self.pad_token_id = model, {k: list(v) for k, v in probes.items() if v}, pad_token_id
        self.path, self.every_n_steps, self.batch_size = Path(path), every_n_steps, batch_size
        self.labels_in_order, self.pairs_per_step = labels_in_order, pairs_per_step
        self.is_main_process = is_main_process
        self.step_lr: dict[int, float] = {}  # optimizer step (1-based) -> the rate its update used
        self._last_probed: Optional[int] = None

    def _probe(self, step: int, learning_rate: Optional[float]) -> None:
        if step == self._last_probed or not self.probes:  # no sets: probes off, no probes.jsonl
            return
        self._last_probed = step
        was_training = self.model.training
        self.model.eval()
        try:
            row: dict = {"step": step, "learning_rate": learning_rate}
            for name, examples in self.probes.items():
                for key, value in probe_logps(self.model, examples, self.pad_token_id, self.batch_size).items():
                    row[f"probe/{name}/{key}"] = value
                row[f"probe/{name}/n"] = len(examples)
        finally:
            self.model.train(was_training)
        if self.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def on_train_begin(self, args, state, control, **kwargs):
        if self.is_main_process and self.path.exists():  # a fresh run starts over; a resumed one
            rows = [line for line in self.path.read_text().splitlines()  # keeps its checkpoint's rows
                    if line.strip() and json.loads(line)["step"] <= state.global_step]
            self.path.write_text("".join(line + "\n" for line in rows) if state.global_step else "")
        if state.global_step == 0:
            self._probe(0, None)

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None:
            self.step_lr[state.global_step + 1] = float(optimizer.param_groups[0]["lr"])

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every_n_steps == 0:
            self._probe(state.global_step, self.step_lr.get(state.global_step))

    def on_train_end(self, args, state, control, **kwargs):
        self._probe(state.global_step, self.step_lr.get(state.global_step))
        if self.is_main_process and self.labels_in_order is not None and self.pairs_per_step:
            summary = route_learning_rates(self.labels_in_order, self.pairs_per_step, self.step_lr, args.learning_rate)
            (self.path.parent / layout.ROUTE_LEARNING_RATES).write_text(json.dumps(summary, indent=2) + "\n")


def route_learning_rates(labels_in_order: Sequence[str], pairs_per_step: int, step_lr: Mapping[int, float],
                         peak: float) -> dict[str, dict[str, float]]:
    """label -> learning rates its pairs were trained at, over the steps in ``step_lr``.

    Step k (1-based) trains positions [(k-1) P, k P) of the order, modulo the epoch: an epoch has
    ceil(N / P) steps and restarts at position 0."""
    n = len(labels_in_order)
    steps_per_epoch = math.ceil(n / pairs_per_step)
    rates: dict[str, list[float]] = defaultdict(list)
    for step, lr in sorted(step_lr.items()):
        start = ((step - 1) % steps_per_epoch) * pairs_per_step
        for label in labels_in_order[start:start + pairs_per_step]:
            rates[label].append(lr)
    return {label: {"pair_updates": len(v), "mean_lr": sum(v) / len(v), "min_lr": min(v), "max_lr": max(v),
                    "mean_lr_fraction_of_peak": (sum(v) / len(v)) / peak if peak else math.nan}
            for label, v in sorted(rates.items())}
