"""Stage 7, trainer: TrainingArguments from the trainer settings, the policy model (dropout off,
a LoRA / QLoRA adapter when ``adapter`` asks), the batch layout, the held-out pairs and the
callbacks that write the run's metrics and generations."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

from ..config import layout
from ..config.schema import TrainConfig
from ..config.settings import Settings
from ..engine.artifacts import MetricsFileCallback
from ..engine.console import use_console
from ..engine.distributed import cpu_ranks, deepspeed_dict, is_main_process, prepare_deepspeed, world_size
from ..engine.eval_callbacks import EvalMetricsFileCallback, GenerationLogCallback, HeldOutPrompt
from ..engine.last_step_log import LogLastStepCallback
from ..engine.precision import tf32_argument
from ..engine.probes import ProbeCallback
from ..engine.memory import PeakMemoryCallback
from ..engine.throughput import ThroughputCallback
from ..difficulty.stages import stage_step_windows
from ..engine.stages import StageWindow
from ..engine.trainer import PreferenceTrainer
from .heldout import HeldOut
from .model_source import ModelSource
from .probes import DisplacementProbes

log = logging.getLogger(__name__)


def build_trainer(settings: Settings, examples: list[dict], probes: DisplacementProbes, model: ModelSource,
                  run_dir: Path, heldout: Optional[HeldOut] = None) -> PreferenceTrainer:
    c, loss = settings.config, settings.loss
    evaluating = heldout is not None and bool(heldout.examples)
    args = training_arguments(c, run_dir, evaluating)
    prepare_deepspeed(args, run_dir)  # DeepSpeed comm before from_pretrained (ZeRO-3 partitions at load)
    # dropout off on the base, before any adapter: adapter.dropout is the user's explicit choice
    policy = model.load_policy(prepare=disable_dropout if c.trainer.disable_dropout else None)
    collator = make_collator(examples, c, policy, model.tokenizer.pad_token_id)
    t = c.trainer
    probe_callback = ProbeCallback(policy, probes.sets, model.tokenizer.pad_token_id, run_dir / layout.PROBES,
                                   every_n_steps=t.probes.every_n_steps, labels_in_order=probes.labels_in_order,
                                   batch_size=t.probes.batch_size or t.per_device_batch_size,
                                   pairs_per_step=pairs_per_step(c),
                                   is_main_process=is_main_process())
    callbacks = [ThroughputCallback(), PeakMemoryCallback(),  # per-rank peaks: before the metrics file
                 MetricsFileCallback(run_dir / layout.METRICS), LogLastStepCallback(),
                 probe_callback]
    trainer = PreferenceTrainer(model=policy, args=args, train_dataset=examples, data_collator=collator,
                                eval_dataset=heldout.examples if evaluating else None,
                                processing_class=model.tokenizer, preference_loss=loss,
                                on_nonfinite=c.trainer.on_nonfinite, callbacks=callbacks,
                                lr_stages=stage_windows(c, examples, pairs_per_step(c)))
    use_console(trainer, progress_bar=not args.disable_tqdm)  # one line per logging step, numbers as numbers
    if evaluating:
        trainer.add_callback(EvalMetricsFileCallback(run_dir / layout.EVAL_METRICS))
        if c.trainer.generation_steps is not None:
            trainer.add_callback(generation_callback(c, heldout, model, run_dir))
    if uses_wandb(c):  # last: it logs the keys the callbacks above added to the same logs
        from ..engine.wandb_callback import PrefexpWandbCallback

        trainer.add_callback(PrefexpWandbCallback(run_dir / layout.METRICS))
    return trainer


def pairs_per_step(c: TrainConfig) -> int:
    """Pairs per optimizer step over all ranks."""
    return c.trainer.per_device_batch_size * c.trainer.gradient_accumulation_steps * world_size()


def stage_windows(c: TrainConfig, examples: list[dict], pairs_per_step: int) -> Optional[list[StageWindow]]:
    """Each curriculum stage's optimizer steps and schedule (None: one schedule, the Trainer's)."""
    if not c.curriculum.stages:
        return None
    sizes = [sum(e["stage"] == n for e in examples) for n in range(len(c.curriculum.stages))]
    t = c.trainer
    return [StageWindow(first, end, s.lr_scheduler or t.lr_scheduler,
                        t.warmup_ratio if s.warmup_ratio is None else s.warmup_ratio)
            for (first, end), s in zip(stage_step_windows(sizes, pairs_per_step), c.curriculum.stages)]


def uses_wandb(c: TrainConfig) -> bool:
    return c.logger.backend == "wandb" and c.logger.mode != "disabled"


def disable_dropout(model) -> None:
    """As TRL: dropout makes policy != reference at step 0 and noises the log-ratios."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def generation_callback(c: TrainConfig, heldout: HeldOut, model: ModelSource, run_dir: Path) -> GenerationLogCallback:
    """The first ``trainer.generation_prompts`` held-out prompts; gold-scored on the sandbox."""
    by_index = {e["index"]: e for e in heldout.examples}
    # a list: generation left-pads with `[pad] * k + prompt_ids`, which on the token cache's arrays would add
    prompts = [HeldOutPrompt(p.prompt[-1]["content"], [int(t) for t in by_index[p.index]["prompt_ids"]])
               for p in heldout.data.pairs if p.index in by_index][: c.trainer.generation_prompts]
    scorer = None
    if c.dataset.source == "sandbox":
        from ..sandbox.task import gold_score

        scorer = gold_score
    zero3 = c.deepspeed.enabled and (c.deepspeed.config.get("zero_optimization") or {}).get("stage") == 3
    return GenerationLogCallback(prompts, c.trainer.generation_steps, c.trainer.generation_max_new_tokens,
                                 model.tokenizer, run_dir / layout.GENERATIONS, scorer,
                                 synced_gpus=zero3 and world_size() > 1)


def training_arguments(c: TrainConfig, run_dir: Path, evaluating: bool = False):
    import torch
    from transformers import TrainingArguments

    t = c.trainer
    return TrainingArguments(
        output_dir=str(run_dir / layout.CHECKPOINTS),
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
        tf32=tf32_argument(t.tf32),  # None without an Ampere+ GPU
        activation_checkpointing=t.gradient_checkpointing,  # transformers 5.23's name (gradient_checkpointing warns)
        torch_compile=t.torch_compile,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=t.eval_steps if evaluating else None,
        per_device_eval_batch_size=t.eval_batch_size,
        prediction_loss_only=True,  # the metrics are the loss's own (PreferenceTrainer.log)
        train_sampling_strategy="sequential",  # the plan's order is the curriculum
        remove_unused_columns=False,
        report_to="none",  # W&B: prefexp's own WandbCallback, added by build_trainer
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
