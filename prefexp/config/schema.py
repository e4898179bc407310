"""Structured-config schemas: one dataclass per config group, registered in Hydra's ConfigStore.

``conf/train.yaml`` extends ``train_schema`` first, so every group option is merged into a typed
node: an unknown key or a value of the wrong type fails at composition time with Hydra's message
naming the full key. Semantic checks (ranges, cross-field rules) live in ``validate.py``.
The ``loss`` node is free-form: its keys are the chosen loss class's keyword arguments, checked by
instantiating the loss once at the entry point.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SandboxModelSpec:
    """Tiny Llama built and SFT-trained by the project itself (see prefexp.sandbox.model)."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_length: int = 96
    sft_steps: int = 3000  # 600 left the reference unable to add (gold 4.7); docs/sandbox.md
    sft_batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    num_prompts: int = 3000


@dataclass
class ModelConfig:
    # "sandbox" builds (or reuses) the cached sandbox model; anything else goes to from_pretrained.
    name_or_path: str = MISSING
    dtype: str = "float32"  # float32 | bfloat16 | float16
    trust_remote_code: bool = False
    # null = the tokenizer's own template ("plain" when it has none); else a built-in name
    # (prefexp/data/chat_templates.py: plain, chatml, zephyr, llama3) or a .jinja file
    chat_template: Optional[str] = None
    sandbox: SandboxModelSpec = field(default_factory=SandboxModelSpec)
    # from_pretrained's attention kernel: null (transformers' default, sdpa where supported) | sdpa |
    # flash_attention_2 (CUDA + the flash_attn package, bf16/fp16 compute) | eager
    attn_implementation: Optional[str] = None


@dataclass
class SandboxDataSpec:
    num_prompts: int = 2000
    seed: int = 0
    responses_per_prompt: int = 4
    rater_noise: float = 0.75
    length_bias: float = 0.3
    pair_rule: str = "best_vs_random"
    # reference_samples: K samples of the sandbox reference model (conf/dataset/sandbox.yaml points
    # `reference` at ${model.sandbox}, so it is the run's own reference); synthetic: hand-corrupted
    responses: str = "reference_samples"
    temperature: float = 1.0
    reference: Any = None  # a SandboxModelSpec; Any because it is an interpolation in the yaml
    cache_dir: Optional[str] = None  # where the reference is built; conf: ${paths.cache_dir}


@dataclass
class ColumnMap:
    """``dataset.columns``: which source column holds each field (null = the field's own name).
    E.g. argilla's UltraFeedback: ``dataset.columns.score_chosen=rating_chosen``."""

    prompt: Optional[str] = None
    chosen: Optional[str] = None
    rejected: Optional[str] = None
    score_chosen: Optional[str] = None
    score_rejected: Optional[str] = None


@dataclass
class DatasetConfig:
    source: str = MISSING  # sandbox | hf | jsonl
    path: Optional[str] = None  # hub name, local dataset folder, or a .jsonl/.jsonl.gz/.json/.parquet file
    split: str = "train"
    max_rows: Optional[int] = None
    on_invalid: str = "error"  # error | skip
    max_length: int = 512
    max_prompt_length: int = 256
    score_min: float = 1.0  # rating scale, used to check tau's range
    score_max: float = 10.0
    sandbox: SandboxDataSpec = field(default_factory=SandboxDataSpec)
    group_positive: str = "best"  # best | threshold; used by multi-response losses
    group_positive_min: Optional[float] = None
    # multi-response rows -> pairs (prefexp.data.groups, docs/multi_response.md)
    columns: ColumnMap = field(default_factory=ColumnMap)
    # pairs | ultrafeedback_raw (openbmb/UltraFeedback: K rated completions) | hh_rlhf (two transcripts)
    layout: str = "pairs"
    pair_rule: str = "best_vs_random"  # best_vs_random | best_vs_worst | all_in_band
    pair_band_low: Optional[float] = None  # all_in_band: inclusive margin bounds, None = unbounded
    pair_band_high: Optional[float] = None
    score_key: str = "overall_score"  # ultrafeedback_raw: overall_score | fine-grained_score
    pair_seed: int = 0  # best_vs_random's pick: row n draws from Random(f"pairs-{pair_seed}-{n}")
    # --- held-out pairs for evaluation during training (prefexp/pipeline/heldout.py); at most one of:
    eval_fraction: float = 0.0  # [0, 1): this fraction of the pairs, drawn with Random(seed), never trained on
    eval_split: Optional[str] = None  # dataset.source=hf: another split of the same dataset, e.g. test_prefs


@dataclass
class RouterConfig:
    name: str = "none"  # none | threshold | quantile | band | random (see prefexp.difficulty.router)
    # rating: score_chosen - score_rejected; reward_model: r(chosen) - r(rejected) of a trained
    # reward model; reference_logp: length-normalised log-prob gap under the reference model
    metric: str = "rating"
    band_low: Optional[float] = None
    band_high: Optional[float] = None
    on_selected: str = "route"  # route | preference | discard | weight
    on_rest: str = "preference"
    selected_weight: float = 1.0
    rest_weight: float = 1.0


@dataclass
class StageSpec:
    """One entry of ``curriculum.stages``: which planned pairs it trains (by route), how many passes
    over them, and its own learning-rate schedule (warm-up and decay restart at the stage's start).

    ``routes``: ``all`` | ``preference`` (pairs on the loss's preference branch) | ``sft`` (pairs
    routed to the SFT branch); ``epochs`` > 0 (a fraction trains that prefix of the stage's pairs);
    ``lr_scheduler`` / ``warmup_ratio``: null = the trainer's.
    """

    routes: list[str] = field(default_factory=lambda: ["all"])
    epochs: float = 1.0
    lr_scheduler: Optional[str] = None
    warmup_ratio: Optional[float] = None


@dataclass
class CurriculumConfig:
    order: str = "none"  # none (seeded shuffle) | easy_to_hard | hard_to_easy
    # empty = one pass over the plan with one schedule; else the stages in turn (conf/curriculum/two_stage.yaml)
    stages: list[StageSpec] = field(default_factory=list)


@dataclass
class ProbesConfig:
    """Likelihood-displacement probes (``prefexp.engine.probes``): forward-only passes over fixed
    pairs. 2 sets x 32 pairs cost ~1.7 training steps of 16 pairs each (tiny GPT-2, CPU): every 50
    steps ~3 % of a run's wall time (every 5 steps it was +33 %). ``batch_size`` null = the training micro-batch, so a probe
    (no gradients) never sets the run's peak memory."""

    enabled: bool = True
    every_n_steps: int = 50  # also before the first step and after the last
    batch_size: Optional[int] = None
    n_pairs: int = 32  # per probe set (difficult / easy by rating margin < tau)


@dataclass
class TrainerConfig:
    max_steps: int = -1  # caps the run; -1 = num_epochs over the data
    num_epochs: float = 1.0
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "fp32"  # fp32 | bf16 | fp16
    gradient_checkpointing: bool = False
    disable_dropout: bool = True
    logging_steps: int = 5
    save_steps: int = 200
    save_total_limit: int = 2
    resume: str = "auto"  # auto (resume from the newest complete checkpoint in the run dir) | never
    # a NaN / inf loss or gradient norm (engine/nonfinite.py): stop (exit 3, nothing non-finite
    # saved) | skip (no optimizer update for that batch; counted in the logs and nonfinite.json)
    on_nonfinite: str = "stop"
    reference_batch_size: int = 32
    probes: ProbesConfig = field(default_factory=ProbesConfig)
    # shared-prompt, padding-free pair batches (engine/packing.py): same log-probs, 1.7x tokens/s in
    # the CPU benchmark (2M params, long responses) but 2.6x slower on the 138k-param sandbox, where
    # building the 4-D mask costs more than the padding it saves; and SDPA with a custom mask cannot
    # use the flash kernel on GPUs (unmeasured). Off by default; groups and token cleaning pad anyway.
    packing: bool = False
    # 0: the plan's order exactly; N: within each block of N consecutive examples (never across a
    # curriculum stage) longest first, so micro-batches pad less; the curriculum holds between
    # blocks (engine/length_groups.py). Off by default: the order is part of the experiment.
    length_group_block: int = 0
    # torch.compile the policy (TrainingArguments.torch_compile). Off by default: it pays on GPUs for
    # long runs; on the CPU sandbox the compile time exceeds the whole run.
    torch_compile: bool = False
    num_threads: Optional[int] = None  # torch CPU threads; None = torch's default
    # --- evaluation during training (only with held-out pairs: dataset.eval_fraction / eval_split)
    eval_steps: int = 100  # eval loss, rewards/accuracies and margins (TRL's eval_* names) every N steps
    eval_batch_size: int = 16
    generation_steps: Optional[int] = None  # greedy answers to a few held-out prompts every N steps; null = off
    generation_prompts: int = 4
    generation_max_new_tokens: int = 64
    # --- scaling (prefexp.launch.ranks): ranks to start on this node; "auto" = every CUDA GPU (1 on CPU).
    devices: Any = 1
    # nodes of the job (prefexp.launch.nodes): > 1 starts trainer.devices ranks on each node, joined by
    # torchrun's static rendezvous at rdzv_endpoint (host:port of node 0, reachable from every node);
    # each node's launch sets NODE_RANK=0..nodes-1. Under SLURM (hydra.launcher.nodes) all three come
    # from the allocation (SLURM_NNODES, SLURM_NODEID, the first host : PREFEXP_RDZV_PORT or 29400).
    nodes: int = 1
    rdzv_endpoint: Optional[str] = None
    # TF32 matmuls / cuDNN convolutions (TrainingArguments.tf32) on Ampere+ GPUs: null = torch's
    # default, true = on (skipped with a log line without such a GPU), false = off
    tf32: Optional[bool] = None


@dataclass
class LoggerConfig:
    backend: str = "wandb"  # wandb | none
    mode: str = "offline"  # offline | online | disabled
    project: str = "prefexp"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    # --- sweeps / W&B naming (prefexp.tracking) ---
    # group: null = the sweep dir's name in multirun (one W&B group per sweep); name: null = the
    # job's overrides; objective: the final metrics.jsonl value a job returns to a sweeper (Optuna).
    job_type: str = "train"
    name: Optional[str] = None
    objective: str = "rewards/accuracies"


@dataclass
class DeepSpeedConfig:
    """conf/deepspeed/<option>.yaml. ``config`` is DeepSpeed's own JSON; its batch keys interpolate
    the trainer group and the resolved dict goes to TrainingArguments(deepspeed=...)."""

    enabled: bool = False
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardModelConfig:
    """Bradley-Terry reward-model training (MADPO, methods.md 3.3: "trained with a Bradley-Terry loss
    on the same preference data"). The model is ``AutoModelForSequenceClassification`` with
    ``num_labels=1`` on the model entry's weights (a new, randomly initialised linear head).

    Ranges: learning_rate > 0 (1e-5 for 1-8B models, 5e-4 suits the 64-wide sandbox model);
    num_epochs > 0; max_steps = -1 (num_epochs over the data) or >= 1; warmup_ratio in [0, 1);
    per_device_batch_size counts *pairs* (each step forwards 2x that many sequences).
    """

    num_epochs: float = 1.0
    max_steps: int = -1
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    lr_scheduler: str = "cosine"  # any transformers SchedulerType name
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "fp32"  # fp32 | bf16 | fp16 (Trainer mixed precision)
    dtype: str = "float32"  # float32 | bfloat16 | float16: the dtype the weights are loaded in
    gradient_checkpointing: bool = False
    disable_dropout: bool = True  # as TRL's RewardTrainer: a deterministic, less noisy BT fit
    seed: int = 0  # head init and batch order
    score_batch_size: int = 32  # pairs per forward when scoring (not in the cache key)
    logging_steps: int = 10  # (not in the cache key)
    # training runs (router.metric=reward_model, loss=madpo): on a cache miss, train and score the
    # reward model inside the run (true) or stop naming the `python -m prefexp.reward` command (false)
    build_if_missing: bool = True  # (not in the cache key)



@dataclass
class TokenCleaningConfig:
    """Token cleaning of the SFT side (methods.md 3.2; prefexp.difficulty.token_cleaning).

    Each chosen-response token is scored by NLL_base - NLL_reference; the top ``keep_fraction`` are
    kept (over the whole dataset for ``level=global``, per response for ``sample``) and SFT terms
    (``loss=sft``, MixDPO's SFT branch) average over kept tokens only.
    """

    enabled: bool = False
    level: str = "global"  # global | sample
    keep_fraction: float = 0.6  # (0, 1]
    # theta (base): a model path, or null with model=sandbox = the sandbox model after
    # base_sft_steps SFT steps (an earlier point of the same training run)
    base_model: Optional[str] = None
    base_sft_steps: int = 100
    # theta' (reference): null = the run's model entry (the policy's initial weights)
    reference_model: Optional[str] = None
    batch_size: int = 32


@dataclass
class AdapterConfig:
    """conf/adapter/<option>.yaml: train low-rank adapters instead of the full weights (peft).

    ``kind``: none (full fine-tuning) | lora | qlora (LoRA on a 4-bit NF4 base, bitsandbytes, CUDA
    only). The reference is the base weights, i.e. the policy with its adapter off; its log-probs
    come from the on-disk cache like any run's. ``r`` >= 1 is the rank, ``alpha`` > 0 the scale
    (the update is alpha / r * B A), ``dropout`` in [0, 1) applies to the adapter's input only
    (``trainer.disable_dropout`` turns off the base model's dropout, not this one).
    ``target_modules``: null = peft's default for the architecture (Llama: q_proj, v_proj; GPT-2:
    c_attn), "all-linear", or a list of module names.
    """

    kind: str = "none"
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: Any = None
    # true: <run>/checkpoint is the merged model (base + B A), a plain HF model; the adapter alone
    # moves to <run>/checkpoint/adapter. Trainer checkpoints (resume) keep the adapter only.
    merge_on_save: bool = False
    # qlora: bitsandbytes 4-bit settings (QLoRA paper: nf4, double quantisation, bf16 compute)
    quant_type: str = "nf4"  # nf4 | fp4
    double_quant: bool = True
    compute_dtype: str = "bfloat16"  # bfloat16 | float16 | float32


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    cache_dir: str = MISSING
    run_dir: Optional[str] = MISSING  # null only under `--cfg job --resolve`: Hydra picks the run dir when the job runs
    # Several nodes: true = cache_dir is one filesystem every node sees (checked at the start: an error if
    # not); false = a node-local scratch path, where each node builds and reads its own cache entries.
    cache_shared: bool = True


@dataclass
class TrainConfig:
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    loss: Any = MISSING
    router: RouterConfig = MISSING
    curriculum: CurriculumConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    paths: PathsConfig = MISSING
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    token_cleaning: TokenCleaningConfig = field(default_factory=TokenCleaningConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    tau: float = 0.5
    seed: int = 0
    dry_run: bool = False
    # benchmarks (conf/eval/<name>.yaml) to run on the final checkpoint, e.g. evaluate=[alpaca_eval];
    # null (the default): [sandbox] on the sandbox model, so the main job ends with its answer; else none
    evaluate: Optional[list[str]] = None
    evaluate_overrides: list[str] = field(default_factory=list)  # passed to each, e.g. [eval.limit=20]
    local: Any = None


def register_schemas() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)


# Allowed values of keys the schema types only as str (checked by prefexp.setup.validate).
METRICS = ("rating", "reward_model", "reference_logp")
ACTIONS = ("route", "preference", "discard", "weight")
ORDERS = ("none", "easy_to_hard", "hard_to_easy")
SOURCES = ("sandbox", "hf", "jsonl")
PRECISIONS = ("fp32", "bf16", "fp16")
