"""Evaluation during training: the eval metrics file and greedy generations on held-out prompts.

The eval loss, ``eval_rewards/*`` and ``eval_logps/*`` themselves come from the Trainer's own
evaluation loop (``PreferenceTrainer.prediction_step`` + its ``log``); these callbacks only write
them to ``<run>/eval_metrics.jsonl`` and add TRL's ``LogCompletionsCallback`` counterpart: every N
steps a few held-out prompts are answered greedily and logged to ``<run>/generations.jsonl`` (and
as a W&B table when a W&B run is active), with a score when the task has a gold scorer (sandbox).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from transformers import TrainerCallback

log = logging.getLogger(__name__)


def _drop_lines_after(path: Path, step: int) -> None:
    """On resume: lines logged after the checkpoint are logged again, so drop them."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines()
                 if line.strip() and json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in lines))


class EvalMetricsFileCallback(TrainerCallback):
    """Appends every evaluation's logs (``eval_loss``, ``eval_rewards/accuracies``, ...) to a file."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step > 0:
            _drop_lines_after(self.path, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "eval_loss" in logs:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


@dataclass
class HeldOutPrompt:
    text: str  # the last user turn, as a reader (and a gold scorer) sees it
    prompt_ids: list[int]  # chat-formatted, as trained on


@torch.no_grad()
def greedy_answers(model, prompts: Sequence[HeldOutPrompt], tokenizer, max_new_tokens: int,
                   synced_gpus: bool = False) -> list[str]:
    """Left-padded batch generation from the prompts' token ids; special tokens dropped."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    width = max(len(p.prompt_ids) for p in prompts)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p.prompt_ids)) + p.prompt_ids for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p.prompt_ids)) + [1] * len(p.prompt_ids) for p in prompts], device=device)
    try:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, synced_gpus=synced_gpus)
    finally:
        model.train(was_training)
    return [t.strip() for t in tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]


class GenerationLogCallback(TrainerCallback):
    """Every ``every`` steps: greedy answers to ``prompts``, one JSON line each in ``path``
    (``step``, ``prompt``, ``completion`` and ``score`` when ``scorer`` is given).

    Every rank generates (ZeRO-3 gathers weights collectively); rank 0 writes.
    """

    def __init__(self, prompts: Sequence[HeldOutPrompt], every: int, max_new_tokens: int, tokenizer, path: Path,
                 scorer: Optional[Callable[[str, str], float]] = None, synced_gpus: bool = False):
        self.prompts, self.every, self.max_new_tokens = list(prompts), every, max_new_tokens
        self.tokenizer, self.path, self.scorer, self.synced_gpus = tokenizer, path, scorer, synced_gpus

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step > 0:
            _drop_lines_after(self.path, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every != 0 or model is None:
            return
        answers = greedy_answers(model, self.prompts, self.tokenizer, self.max_new_tokens, self.synced_gpus)
        if not state.is_world_process_zero:
            return
        rows = []
        for prompt, answer in zip(self.prompts, answers):
            row = {"step": state.global_step, "prompt": prompt.text, "completion": answer}
            if self.scorer is not None:
                row["score"] = self.scorer(prompt.text, answer)
            rows.append(row)
        with self.path.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        if self.scorer is not None:
            log.info("step %d: mean score of %d held-out generations %.3f", state.global_step, len(rows),
                     sum(r["score"] for r in rows) / len(rows))
        _log_wandb_table(rows, state.global_step)


def _log_wandb_table(rows: list[dict], step: int) -> None:
    import sys

    from ..tracking.run import log_at_step

    wandb = sys.modules.get("wandb")  # only when the run already imported it (logger=wandb)
    if wandb is None or wandb.run is None:
        return
    columns = list(rows[0])
    # the row of this step: the evaluation runs after the step's training log
    log_at_step({"generations": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows]),
                 "train/global_step": step}, step)
