"""The training pipeline: validated settings in, a run directory of artifacts out.

config -> rows -> pairs -> margins / routing plan / order -> tokens -> reference log-probs
-> Trainer -> checkpoint + manifest (+ W&B offline run). Only typed settings come in here.
"""
from __future__ import annotations

import hashlib
import json
import sys
import logging
from dataclasses import asdict
from pathlib import Path

from ..config.schema import TrainConfig
from ..config.validate import Settings
from ..data.records import to_pairs
from ..data.sources import describe, load_rows
from ..data.records import PreferencePair
from ..difficulty.plan import make_plan, plot_histogram, rating_margins, summarize, write_plan
from ..difficulty.router import RouterSpec, select
from .distributed import is_main_process
from .groups import has_groups, keep_contrastive_groups
from .prepare import loss_metric, needed_metrics

log = logging.getLogger(__name__)


def resolve_model_path(c: TrainConfig) -> str:
    if c.model.name_or_path != "sandbox":
        return c.model.name_or_path
    from ..sandbox.model import ensure_sandbox_model

    return str(ensure_sandbox_model(Path(c.paths.cache_dir), **asdict(c.model.sandbox)))


def router_spec(c: TrainConfig) -> RouterSpec:
    r = c.router
    return RouterSpec(r.name, c.tau, r.band_low, r.band_high, r.on_selected, r.on_rest, r.selected_weight,
                      r.rest_weight)


def load_pairs(settings: Settings) -> list[PreferencePair]:
    c, loss = settings.config, settings.loss
    needs_rating = "rating" in needed_metrics(c, loss)
    return to_pairs(load_rows(c.dataset), describe(c.dataset), c.dataset.on_invalid, require_scores=needs_rating)


def plan_data(settings: Settings, pairs: list[PreferencePair], margins: list, run_dir: Path,
              loss_margins: dict[int, float] | None = None, extra_summary: dict | None = None):
    """Route and order the pairs; write routing_plan.jsonl, routing_summary.json, margins.png."""
    c, loss = settings.config, settings.loss
    spec = router_spec(c)
    branch = getattr(loss, "preference_branch", settings.loss_name)
    kept, discarded = make_plan(pairs, margins, spec, c.curriculum.order, c.seed, branch, loss.routes_pairs)
    if loss_margins is not None:  # the loss reads another metric than the router: record both
        for entry in [*kept, *discarded]:
            entry.loss_margin = loss_margins[entry.index]
    summary = summarize(kept, discarded, spec, c.router.metric, c.curriculum.order)
    summary.update(extra_summary or {})
    if is_main_process():  # [scaling] every rank plans (same result), only rank 0 writes
        write_plan(kept, run_dir / "routing_plan.jsonl", c.router.metric)
        (run_dir / "routing_summary.json").write_text(json.dumps(summary, indent=2))
    if any(m is not None for m in margins) and is_main_process():
        cut = c.tau if spec.name == "threshold" else None
        if spec.name == "quantile":
            selected = [m for m, s in zip(margins, select(margins, spec)) if s]
            cut = max(selected) if selected else None
        plot_histogram(kept, discarded, summary, run_dir / "margins.png", cut)
    log.info("routing plan: %d pairs, routes %s, router=%s tau=%g metric=%s order=%s", summary["pairs"],
             summary["routes"], spec.name, c.tau, c.router.metric, c.curriculum.order)
    if not kept:
        raise ValueError(f"router={spec.name} with tau={c.tau} leaves no pair to train on; see {run_dir / 'routing_summary.json'}")
    return kept


def make_collator(use_groups: bool, token_cleaning: bool, packing: bool, model, pad_token_id: int):
    """Groups and token cleaning need the padded layout; plain pairs are packed when asked and the
    attention implementation takes a custom 4-D mask (sdpa, eager)."""
    from .batching import PairCollator
    from .groups import GroupCollator
    from .packing import PackedPairCollator

    if use_groups:
        return GroupCollator(pad_token_id)
    attn = getattr(model.config, "_attn_implementation", None) or "sdpa"
    if packing and not token_cleaning and attn in ("sdpa", "eager"):
        return PackedPairCollator(pad_token_id)
    if packing:
        log.info("trainer.packing: padded batches instead (%s)",
                 "token cleaning masks per-token log-probs" if token_cleaning else f"attn_implementation={attn}")
    return PairCollator(pad_token_id)


def config_hash(resolved: dict) -> str:
    import json

    keep = {k: v for k, v in resolved.items() if k not in ("paths", "hydra", "logger")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:12]


def train(settings: Settings, resolved: dict, run_dir: Path) -> Path | None:
    """Run the whole job; returns the final checkpoint dir (None for a dry run)."""
    c, loss = settings.config, settings.loss
    run_dir.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs(settings)
    extra_summary: dict = {}
    use_groups = loss.needs_groups and has_groups(pairs)
    if use_groups:  # K responses per prompt; groups with no contrast cannot train
        pairs, dropped = keep_contrastive_groups(pairs, c.dataset.group_positive, c.dataset.group_positive_min)
        extra_summary["groups"] = {"trained": len(pairs), "left_out_without_contrast": dropped,
                                   "group_positive": c.dataset.group_positive}
    elif loss.needs_groups:
        log.warning("loss needs K responses per prompt but the data has none: training on pairs as groups of 2")
    metrics = needed_metrics(c, loss)
    plan = None
    if metrics <= {"rating"}:  # the plan needs no model: write it first, so dry runs cost nothing
        plan = plan_data(settings, pairs, rating_margins(pairs), run_dir, extra_summary=extra_summary)
        if c.dry_run:
            log.info("dry_run=true: routing plan written to %s; no training", run_dir)
            return None

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from .artifacts import LossStateCallback, MetricsFileCallback, load_loss_state, write_manifest
    from .distributed import cpu_ranks, deepspeed_dict, main_process_first, prepare_deepspeed, shared_reference_logps
    from .groups import add_groups
    from .prepare import attach_clean_masks, attach_group_reference, reference_logp_margins, reward_model_margins
    from .throughput import ThroughputCallback
    from .tokenize import ensure_chat_template, tokenize_pairs
    from .trainer import PreferenceTrainer

    if c.trainer.num_threads is not None:
        torch.set_num_threads(c.trainer.num_threads)
    set_seed(c.seed)
    with main_process_first():  # [scaling] one rank builds a missing sandbox model, the others reuse it
        model_path = resolve_model_path(c)
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=c.model.trust_remote_code)
    ensure_chat_template(tokenizer)
    examples, _ = tokenize_pairs(pairs, tokenizer, c.dataset.max_length, c.dataset.max_prompt_length)
    if use_groups:
        examples = add_groups(examples, pairs, tokenizer, c.dataset.max_length, c.dataset.group_positive,
                              c.dataset.group_positive_min)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[c.model.dtype]

    def load_model(path: str = model_path):
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=c.model.trust_remote_code)

    def reference_logps(items: list[dict]) -> dict:
        # [scaling] before TrainingArguments: plain model on this rank's device, sharded over ranks
        return shared_reference_logps(load_model, model_path, items, tokenizer.pad_token_id,
                                      c.trainer.reference_batch_size, Path(c.paths.cache_dir), c.trainer.precision)

    margins: dict[str, dict[int, float]] = {}
    if "rating" in metrics:
        margins["rating"] = {p.index: m for p, m in zip(pairs, rating_margins(pairs))}
    if "reward_model" in metrics:
        with main_process_first():  # [scaling] rank 0 trains and scores, the others read the cache
            margins["reward_model"] = reward_model_margins(c, model_path, tokenizer, pairs)
    if loss.needs_reference or "reference_logp" in metrics:
        ref = reference_logps(examples)
        for example in examples:
            example["reference_chosen_logps"], example["reference_rejected_logps"] = ref[example["index"]]
        if use_groups and loss.needs_reference:
            attach_group_reference(examples, reference_logps)
    if "reference_logp" in metrics:
        margins["reference_logp"] = reference_logp_margins(examples)
    if c.token_cleaning.enabled:
        extra_summary["token_cleaning"] = attach_clean_masks(c, model_path, examples, tokenizer.pad_token_id, load_model)
        if plan is not None and is_main_process():  # the plan was written before any model: add it there
            summary_path = run_dir / "routing_summary.json"
            summary = {**json.loads(summary_path.read_text()), "token_cleaning": extra_summary["token_cleaning"]}
            summary_path.write_text(json.dumps(summary, indent=2))
    by_loss_metric = loss_metric(c, loss)
    if plan is None:
        router_margins = [margins[c.router.metric][p.index] for p in pairs] if c.router.metric in margins \
            else [None] * len(pairs)
        other = by_loss_metric is not None and by_loss_metric != c.router.metric
        plan = plan_data(settings, pairs, router_margins, run_dir, margins[by_loss_metric] if other else None,
                         extra_summary)
        if c.dry_run:
            log.info("dry_run=true: routing plan written to %s; no training", run_dir)
            return None
    by_index = {e["index"]: e for e in examples}
    examples = []
    for entry in plan:  # training order = plan order
        example = dict(by_index[entry.index])
        margin = entry.loss_margin if entry.loss_margin is not None else entry.margin
        example["margins"] = margin if margin is not None else float("nan")
        example["difficult"] = entry.difficult
        example["pair_weights"] = entry.weight
        examples.append(example)

    t = c.trainer
    use_wandb = c.logger.backend == "wandb" and c.logger.mode != "disabled"
    args = TrainingArguments(
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
        deepspeed=deepspeed_dict(c.deepspeed.enabled, c.deepspeed.config),  # [scaling] None = off
        use_cpu=cpu_ranks() or not torch.cuda.is_available(),  # [scaling] gloo ranks; bf16 on CPU needs it
    )
    prepare_deepspeed(args, run_dir)  # [scaling] DeepSpeed comm + <run dir>/ds_config.json
    model = load_model()
    collator = make_collator(use_groups, c.token_cleaning.enabled, t.packing, model, tokenizer.pad_token_id)
    if t.disable_dropout:  # as TRL: dropout makes policy != reference at step 0 and noises the log-ratios
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    trainer = PreferenceTrainer(model=model, args=args, train_dataset=examples,
                                data_collator=collator, processing_class=tokenizer,
                                preference_loss=loss, callbacks=[ThroughputCallback(),  # [scaling] tokens/s
                                                                MetricsFileCallback(run_dir / "metrics.jsonl")])
    if loss.is_stateful:  # running statistics travel with the checkpoints
        trainer.add_callback(LossStateCallback(loss))
    last = get_last_checkpoint(args.output_dir) if t.resume == "auto" and Path(args.output_dir).is_dir() else None
    if last:
        log.info("resuming from %s", last)
        if loss.is_stateful and not load_loss_state(loss, last):
            log.warning("%s holds no loss state: %s's running statistics restart from zero", last, settings.loss_name)
    trainer.train(resume_from_checkpoint=last)

    final = run_dir / "checkpoint"
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final))
        write_manifest(final, base_model=c.model.name_or_path if c.model.name_or_path != "sandbox" else model_path,
                       reference_model=model_path, loss=settings.loss_name, config_hash=config_hash(resolved),
                       step=trainer.state.global_step, chat_template=tokenizer.chat_template, run_dir=run_dir)
        log.info("final checkpoint: %s (step %d)", final, trainer.state.global_step)
    return final
