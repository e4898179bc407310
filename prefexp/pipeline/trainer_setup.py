"""Stage 7, trainer: TrainingArguments from the trainer settings, the policy model (dropout off),
the batch layout and the callbacks that write the run's metrics."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..config.schema import TrainConfig
from ..config.validate import Settings
from ..engine.artifacts import LossStateCallback, MetricsFileCallback
from ..engine.distributed import cpu_ranks, deepspeed_dict, prepare_deepspeed
from ..engine.memory import PeakMemoryCallback
from ..engine.throughput import ThroughputCallback
from ..engine.trainer import PreferenceTrainer
from .model_source import ModelSource

log = logging.getLogger(__name__)


def build_trainer(settings: Settings, examples: list[dict], model: ModelSource, run_dir: Path) -> PreferenceTrainer:
    import torch

    c, loss = settings.config, settings.loss
    args = training_arguments(c, run_dir)
    prepare_deepspeed(args, run_dir)  # DeepSpeed comm before from_pretrained (ZeRO-3 partitions at load)
    policy = model.load()
    if c.trainer.disable_dropout:  # as TRL: dropout makes policy != reference at step 0 and noises the log-ratios
        for module in policy.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    collator = make_collator(examples, c, policy, model.tokenizer.pad_token_id)
    trainer = PreferenceTrainer(model=policy, args=args, train_dataset=examples, data_collator=collator,
                                processing_class=model.tokenizer, preference_loss=loss,
                                callbacks=[ThroughputCallback(), PeakMemoryCallback(),  # per-rank peaks, before the file
                                           MetricsFileCallback(run_dir / "metrics.jsonl")])
    if loss.is_stateful:  # running statistics travel with the checkpoints
        trainer.add_callback(LossStateCallback(loss))
    return trainer


def training_arguments(c: TrainConfig, run_dir: Path):
    import torch
    from transformers import TrainingArguments

    t = c.trainer
    use_wandb = c.logger.backend == "wandb" and c.logger.mode != "disabled"
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=t.max_steps,
        num_train_epochs=t.num_epochs,
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a fraction of the total steps in transformers 5
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        gradient_checkpointing=t.gradient_checkpointing,
        torch_compile=t.torch_compile,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        train_sampling_strategy="sequential",  # the plan's order is the curriculum
        remove_unused_columns=False,
        report_to=["wandb"] if use_wandb else "none",
        seed=c.seed,
        disable_tqdm=not sys.stderr.isatty(),  # progress bar only on a terminal
        deepspeed=deepspeed_dict(c.deepspeed.enabled, c.deepspeed.config),  # None = off
        use_cpu=cpu_ranks() or not torch.cuda.is_available(),  # gloo ranks; bf16 on CPU needs it
    )


def make_collator(examples: list[dict], c: TrainConfig, policy, pad_token_id: int):
    """Groups and token cleaning need the padded layout; plain pairs are packed when asked and the
    attention implementation takes a custom 4-D mask (sdpa, eager)."""
    from ..engine.batching import PairCollator
    from ..engine.groups import GroupCollator
    from ..engine.packing import PackedPairCollator

    if "group_ids" in examples[0]:
        return GroupCollator(pad_token_id)
    cleaning = "clean_keep" in examples[0]
    attn = getattr(policy.config, "_attn_implementation", None) or "sdpa"
    if c.trainer.packing and not cleaning and attn in ("sdpa", "eager"):
        return PackedPairCollator(pad_token_id)
    if c.trainer.packing:
        log.info("trainer.packing: padded batches instead (%s)",
                 "token cleaning masks per-token log-probs" if cleaning else f"attn_implementation={attn}")
    return PairCollator(pad_token_id)
