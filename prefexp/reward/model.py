"""A Bradley-Terry reward model: train it with a small Trainer subclass, score pairs with it.

Model: ``AutoModelForSequenceClassification(num_labels=1)`` on the base weights (a new linear head
``score``), ``config.pad_token_id`` set. The reward of a sequence is the head's output at the
**rightmost token that is not padding** (transformers' pooling rule): with a pad token distinct from
EOS that is the EOS appended to every response (``tokenize_pairs``, as TRL); when pad == EOS (GPT-2)
it is the last response token.

Loss (Bradley-Terry; Ouyang et al. 2022, TRL ``RewardTrainer`` without margin or centring):

    L = mean_i  -log sigma(r(x_i, y_c,i) - r(x_i, y_r,i))

Batches reuse the policy's :class:`PairCollator` (chosen rows then rejected rows, right-padded), so
the reward model sees exactly the token ids and truncation of the training pipeline.
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm
from transformers import Trainer

from ..engine.batching import PairCollator
from .hparams import RewardModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def bradley_terry_loss(chosen_rewards: Tensor, rejected_rewards: Tensor) -> Tensor:
    """Scalar ``mean(-logsigmoid(r_c - r_r))`` over pairs; inputs [B]. Equals ln 2 when r_c == r_r."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def pair_rewards(model, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(r_chosen [B], r_rejected [B]) from one forward over a :class:`PairCollator` batch [2B, T]."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    rewards = out.logits[:, 0].float()  # [2B]
    n = rewards.shape[0] // 2
    return rewards[:n], rewards[n:]


class RewardTrainer(Trainer):
    """transformers.Trainer with the Bradley-Terry loss; logs ``rm/accuracy`` and ``rm/margin``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # the loss is a batch mean; Trainer divides by accumulation
        self._stored: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        r_c, r_r = pair_rewards(model, inputs)  # [B], [B]
        loss = bradley_terry_loss(r_c, r_r)
        with torch.no_grad():
            margin = r_c - r_r  # [B]
            self._stored["rm/accuracy"].append((margin > 0).float().mean().item())
            self._stored["rm/margin"].append(margin.mean().item())
        return (loss, {"chosen_rewards": r_c, "rejected_rewards": r_r}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._stored:
            for key, values in self._stored.items():
                logs[key] = sum(values) / len(values)
            self._stored.clear()
        super().log(logs, start_time)


def load_base_as_reward_model(model_path: str, pad_token_id: int, hparams: RewardModelConfig,
                              trust_remote_code: bool = False):
    """The base weights with a fresh 1-output head (seeded by ``hparams.seed``), dropout off if asked."""
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(hparams.seed)  # the new head's init
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=1, dtype=DTYPES[hparams.dtype], trust_remote_code=trust_remote_code)
    model.config.pad_token_id = pad_token_id  # pooling finds the last non-pad token with it
    if hparams.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return model


def train_reward_model(model_path: str, hparams: RewardModelConfig, examples: Sequence[dict], tokenizer,
                       output_dir: Path, trust_remote_code: bool = False) -> dict:
    """Train on tokenized pairs (``tokenize_pairs`` output) and save model + tokenizer to ``output_dir``.

    Returns a summary: steps, final mean training loss, seconds, number of pairs.
    """
    from transformers import TrainingArguments

    if not examples:
        raise ValueError("no pairs to train the reward model on")
    t0 = time.perf_counter()
    h = hparams
    model = load_base_as_reward_model(model_path, tokenizer.pad_token_id, h, trust_remote_code)
    args = TrainingArguments(
        output_dir=str(output_dir / "trainer"),
        max_steps=h.max_steps,
        num_train_epochs=h.num_epochs,
        per_device_train_batch_size=h.per_device_batch_size,
        gradient_accumulation_steps=h.gradient_accumulation_steps,
        learning_rate=h.learning_rate,
        lr_scheduler_type=h.lr_scheduler,
        warmup_steps=h.warmup_ratio,  # a float < 1 is a fraction of the total steps in transformers 5
        weight_decay=h.weight_decay,
        max_grad_norm=h.max_grad_norm,
        bf16=h.precision == "bf16",
        fp16=h.precision == "fp16",
        activation_checkpointing=h.gradient_checkpointing,  # the new name of gradient_checkpointing
        logging_steps=h.logging_steps,
        logging_first_step=True,
        save_strategy="no",  # the cache entry is written once, atomically, by the caller
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        report_to="none",
        seed=h.seed,
        disable_tqdm=not sys.stderr.isatty(),
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=list(examples),
                            data_collator=PairCollator(tokenizer.pad_token_id), processing_class=tokenizer)
    result = trainer.train()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    history = [row for row in trainer.state.log_history if "loss" in row]
    return {"steps": trainer.state.global_step, "train_loss": result.training_loss,
            "last_logged": history[-1] if history else None, "pairs": len(examples),
            "train_seconds": time.perf_counter() - t0}


@torch.no_grad()
def score_pairs(model, examples: Sequence[dict], pad_token_id: int, batch_size: int) -> dict[int, tuple[float, float]]:
    """``{example index: (r_chosen, r_rejected)}`` in float32, batches sorted by length (less padding)."""
    model.eval()
    collate = PairCollator(pad_token_id)
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["prompt_ids"])
                   + max(len(examples[i]["chosen_ids"]), len(examples[i]["rejected_ids"])))
    out: dict[int, tuple[float, float]] = {}
    for start in tqdm(range(0, len(order), batch_size), desc="reward scores", unit="batch", disable=None):
        chunk = [examples[i] for i in order[start: start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        r_c, r_r = pair_rewards(model, batch)
        for e, c, r in zip(chunk, r_c.tolist(), r_r.tolist()):
            out[e["index"]] = (c, r)
    return out


def pairwise_accuracy(scores: dict[int, tuple[float, float]]) -> float:
    """Share of pairs with r_chosen > r_rejected (ties count as wrong)."""
    return sum(c > r for c, r in scores.values()) / max(1, len(scores))


def mean_bt_loss(scores: dict[int, tuple[float, float]]) -> float:
    """The Bradley-Terry loss of stored scores (ln 2 = chance)."""
    if not scores:
        return float("nan")
    values = torch.tensor(list(scores.values()), dtype=torch.float64)  # [N, 2]
    return bradley_terry_loss(values[:, 0], values[:, 1]).item()
