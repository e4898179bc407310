"""Typed settings of the evaluation stage, registered as Hydra structured-config schemas.

``conf/evaluate.yaml`` extends ``evaluate_schema`` and each ``conf/eval/<benchmark>.yaml`` extends
``eval/base_<benchmark>``, so an unknown key or a wrong type fails at composition time with
Hydra's message naming the key. ``validate`` adds the semantic rules and collects every problem
into one message. Everything below ``prefexp.evaluate`` receives these dataclasses, never a
``DictConfig``.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

from ..errors import InputError
from .. import benchmark_registry as registry

# FastChat llm_judge/common.py `temperature_config`: the sampling temperature MT-Bench pins per
# question category when generating answers (0 = greedy).
MT_BENCH_TEMPERATURES = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
    "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1,
}
BACKENDS = ("hf", "vllm")
BENCHMARKS = tuple(registry.BENCHMARKS)  # the names, in registry order


class EvalConfigError(InputError):
    """A config problem, one per line, each naming the key, the value and the fix."""


@dataclass
class JudgeConfig:
    """An OpenAI-compatible chat-completions endpoint used as the judge.

    The API key is never part of the config: ``api_key_env`` names the environment variable that
    holds it, and it is read in-process only when a client is built.
    """

    base_url: Optional[str] = "https://api.openai.com/v1"
    model: str = "gpt-4"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0          # per request; a request running longer counts as a fault
    connect_timeout_s: float = 10.0   # reachability probe before any generation starts
    max_retries: int = 6              # retries on 429, 5xx and time-outs (not on 4xx)
    backoff_s: float = 2.0            # first wait; doubles per retry, capped at max_backoff_s
    max_backoff_s: float = 60.0
    concurrency: int = 4              # requests in flight at once
    temperature: float = 0.0
    max_tokens: int = 2048
    reparse_retries: int = 2          # MT-Bench: ask again this often when an answer has no [[rating]]


@dataclass
class GenerationConfig:
    """How answers are generated. ``temperature: null`` means the benchmark's pinned setting."""

    backend: str = "hf"               # hf (transformers generate) | vllm (OpenAI-compatible server)
    device: str = "auto"              # auto | cpu | cuda | cuda:N  (hf backend)
    dtype: str = "auto"               # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
    batch_size: int = 8
    max_new_tokens: int = 1024
    temperature: Optional[float] = None
    top_p: float = 1.0
    seed: int = 0
    regenerate: bool = False          # ignore saved outputs and generate again
    vllm_url: Optional[str] = None    # e.g. http://127.0.0.1:8000/v1 of a running server
    vllm_python: Optional[str] = None  # python of a separate env with vllm: start a server
    vllm_model: Optional[str] = None  # served model name; default: the first one /models lists
    vllm_port: int = 8011
    vllm_args: list[str] = field(default_factory=list)
    vllm_startup_timeout_s: float = 900.0
    vllm_concurrency: int = 64
    vllm_api_key_env: str = "VLLM_API_KEY"  # only read if the server wants a key


@dataclass
class BenchmarkConfig:
    name: str = MISSING
    limit: Optional[int] = None       # evaluate N items, sampled from every category in proportion
    limit_seed: int = 0               # the seed of that sample (the same N and seed = the same items)
    data_dir: Optional[str] = None    # local copy of the benchmark data; null = public source
    model_name: Optional[str] = None  # name of the evaluated model in outputs; default from run
    generation: GenerationConfig = field(default_factory=GenerationConfig)


@dataclass
class AlpacaEvalConfig(BenchmarkConfig):
    name: str = "alpaca_eval"
    judge: JudgeConfig = field(default_factory=lambda: JudgeConfig(model="gpt-4-1106-preview"))
    annotator: str = "weighted_alpaca_eval_gpt4_turbo"  # a config dir shipped with alpaca_eval
    reference: str = "gpt4_1106_preview"                # AE2 baseline; text_davinci_003 = AE1
    lc_glm: str = "length_controlled_v1"
    lc_df_gamed: Optional[str] = None  # df_gamed.csv (file or folder) for the LC win rate; see docs


@dataclass
class MTBenchConfig(BenchmarkConfig):
    name: str = "mt_bench"
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    category_temperatures: dict[str, float] = field(default_factory=lambda: dict(MT_BENCH_TEMPERATURES))
    reference_answers: str = "gpt-4"  # reference_answer_<this>.jsonl for math/reasoning/coding
    fastchat_commit: str = "0e6d3e4beaab66f4d3f93db72541a4abab8af28d"  # public data revision


@dataclass
class SandboxConfig(BenchmarkConfig):
    name: str = "sandbox"
    n_prompts: int = 200
    prompt_seed: int = 1234
    reference_model: Optional[str] = None  # default: the manifest's reference_model
    # decoding protocols, each scoring policy and reference alike: greedy (generation.temperature)
    # and sample (sample_temperature, samples_per_prompt answers per prompt, seeded by generation.seed)
    decoding: list[str] = field(default_factory=lambda: ["greedy", "sample"])
    sample_temperature: float = 1.0  # the sandbox preference data are temperature-1 reference samples
    samples_per_prompt: int = 1
    # where the reference's answers are cached once per reference and decoding (reference_answers.py);
    # null: generated in each eval dir
    cache_dir: Optional[str] = None
    headline: str = "sample"  # the protocol whose numbers are the top-level metrics: the one the DPO calibration showed the gain under (docs/sandbox.md)


ENTRIES = ("checkpoint", "hf_model", "outputs", "annotations")


@dataclass
class EvaluateConfig:
    # What to evaluate: exactly one of these four (prefexp.evaluation.sources).
    checkpoint: Optional[str] = None  # a prefexp run dir (with checkpoint/) or checkpoint dir
    hf_model: Optional[str] = None    # any HF model folder or hub id (no manifest needed)
    outputs: Optional[str] = None     # AlpacaEval model_outputs.json / MT-Bench answers .jsonl: judge only
    annotations: Optional[str] = None  # AlpacaEval annotations / MT-Bench judgments: score only
    chat_template: Optional[str] = None  # hf_model=: a template (or a file holding one) over the tokenizer's
    eval: Any = MISSING
    output_dir: Optional[str] = None  # default <run or checkpoint>/eval/<benchmark>, else outputs/eval/...
    wandb: bool = True                # add the numbers to the training run's W&B summary
    log_level: str = "INFO"


# Each schema keyed by its own ``name`` default; they and the registry must name the same benchmarks
# (the registry cannot hold the classes: this module reads the registry).
SCHEMAS = {schema.name: schema for schema in (AlpacaEvalConfig, MTBenchConfig, SandboxConfig)}
if sorted(SCHEMAS) != sorted(registry.BENCHMARKS):
    raise RuntimeError(f"evaluation schemas {sorted(SCHEMAS)} and the benchmark registry "
                       f"{sorted(registry.BENCHMARKS)} (prefexp/benchmark_registry.py) differ")


def register_schemas() -> None:
    """Store ``evaluate_schema`` and ``eval/base_<benchmark>`` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    for name, schema in SCHEMAS.items():
        cs.store(group="eval", name=f"base_{name}", node=schema)


def _check_generation(g: GenerationConfig, bench: str, errors: list[str]) -> None:
    key = "eval.generation"
    if g.backend not in BACKENDS:
        errors.append(f"{key}.backend={g.backend!r} is not one of {BACKENDS}")
    if g.backend == "vllm" and g.vllm_url is None and g.vllm_python is None:
        errors.append(f"{key}.backend=vllm needs {key}.vllm_url (a running server) or "
                      f"{key}.vllm_python (the python of an env with vllm, to start one)")
    if g.backend == "vllm" and bench == "sandbox":
        errors.append(f"{key}.backend=vllm: the sandbox benchmark generates with hf only "
                      "(it also generates with the reference model); use backend=hf")
    if g.batch_size < 1:
        errors.append(f"{key}.batch_size={g.batch_size} must be >= 1")
    if g.max_new_tokens < 1:
        errors.append(f"{key}.max_new_tokens={g.max_new_tokens} must be >= 1")
    if g.temperature is not None and g.temperature < 0:
        errors.append(f"{key}.temperature={g.temperature} must be >= 0 (0 = greedy)")
    if g.temperature is None and bench != "mt_bench":
        errors.append(f"{key}.temperature=null is only meaningful for mt_bench (per-category "
                      "temperatures); set a number (0 = greedy)")
    if not 0 < g.top_p <= 1:
        errors.append(f"{key}.top_p={g.top_p} must be in (0, 1]")
    if g.dtype not in ("auto", "float32", "bfloat16", "float16"):
        errors.append(f"{key}.dtype={g.dtype!r} is not one of auto, float32, bfloat16, float16")


def _check_judge(j: JudgeConfig, errors: list[str]) -> None:
    key = "eval.judge"
    if j.base_url is None or not str(j.base_url).strip():
        errors.append(f"{key}.base_url is not set: give the judge's OpenAI-compatible endpoint, "
                      f"e.g. {key}.base_url=https://api.openai.com/v1")
    elif not str(j.base_url).startswith(("http://", "https://")):
        errors.append(f"{key}.base_url={j.base_url!r} must start with http:// or https://")
    if not j.model.strip():
        errors.append(f"{key}.model is empty: name the judge model, e.g. {key}.model=gpt-4")
    if not os.environ.get(j.api_key_env):
        errors.append(f"{key}.api_key_env={j.api_key_env!r}: the environment variable "
                      f"{j.api_key_env} is not set (export it; the key never goes into a config)")
    if j.max_retries < 0 or j.concurrency < 1 or j.timeout_s <= 0:
        errors.append(f"{key}: need max_retries >= 0, concurrency >= 1, timeout_s > 0 "
                      f"(got {j.max_retries}, {j.concurrency}, {j.timeout_s})")


DECODINGS = ("greedy", "sample")


def _check_sandbox(bench: SandboxConfig, errors: list[str]) -> None:
    if bench.n_prompts < 1:
        errors.append(f"eval.n_prompts={bench.n_prompts} must be >= 1")
    decoding = list(bench.decoding)
    if not decoding or any(d not in DECODINGS for d in decoding) or len(set(decoding)) != len(decoding):
        errors.append(f"eval.decoding={decoding} must be a non-empty list of distinct protocols from {list(DECODINGS)}, "
                      "e.g. eval.decoding=[greedy,sample]")
    if bench.headline not in decoding:
        errors.append(f"eval.headline={bench.headline!r} must be one of eval.decoding={decoding}")
    if bench.samples_per_prompt < 1:
        errors.append(f"eval.samples_per_prompt={bench.samples_per_prompt} must be >= 1")
    if not bench.sample_temperature > 0:
        errors.append(f"eval.sample_temperature={bench.sample_temperature} must be > 0 (greedy is eval.decoding=[greedy])")


def _alpaca_annotator_exists(name: str) -> bool:
    # Found without importing alpaca_eval (its import reads env vars and is slow).
    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None or not spec.submodule_search_locations:
        return False
    root = Path(list(spec.submodule_search_locations)[0])
    return (root / "evaluators_configs" / name / "configs.yaml").is_file()


def entry_of(cfg: EvaluateConfig) -> tuple[str, str]:
    """(which of ``ENTRIES`` is set, its value); exactly one must be."""
    given = [(k, getattr(cfg, k)) for k in ENTRIES if getattr(cfg, k) is not None]
    if len(given) != 1:
        what = ", ".join(f"{k}={v}" for k, v in given) or "none"
        raise EvalConfigError(
            f"give exactly one of checkpoint=<prefexp run dir>, hf_model=<HF folder or hub id>, "
            f"outputs=<model_outputs.json or answers .jsonl>, annotations=<annotations or judgments file> "
            f"(got {what})")
    return given[0]


def validate(cfg: EvaluateConfig) -> None:
    """Raise ``EvalConfigError`` listing every problem (key, value, fix), or return quietly."""
    errors: list[str] = []
    bench = cfg.eval
    entry, value = entry_of(cfg)
    if entry != "checkpoint" and isinstance(bench, SandboxConfig):
        errors.append(f"{entry}={value}: eval=sandbox evaluates a prefexp checkpoint against its "
                      "reference model; give checkpoint=<run dir>")
    if entry in ("outputs", "annotations") and not Path(value).expanduser().is_file():
        errors.append(f"{entry}={value!r} is not a file")
    if cfg.chat_template is not None and entry != "hf_model":
        errors.append(f"chat_template is only used with hf_model= (a checkpoint's manifest holds its own); "
                      f"drop it or use hf_model=")
    if (unknown := registry.unknown_benchmark(bench.name, key="eval.name")) is not None:
        errors.append(unknown)  # eval.name=<other>: the runner would not find it
    if bench.limit is not None and bench.limit < 1:
        errors.append(f"eval.limit={bench.limit} must be >= 1 (or null for all items)")
    if bench.data_dir is not None and not Path(bench.data_dir).is_dir():
        errors.append(f"eval.data_dir={bench.data_dir!r} is not a directory")
    if entry in ("checkpoint", "hf_model"):
        _check_generation(bench.generation, bench.name, errors)
    if isinstance(bench, (AlpacaEvalConfig, MTBenchConfig)):
        if entry != "annotations":  # scoring existing judgments needs no judge
            _check_judge(bench.judge, errors)
        if bench.judge.reparse_retries < 0:
            errors.append(f"eval.judge.reparse_retries={bench.judge.reparse_retries} must be >= 0")
    if isinstance(bench, AlpacaEvalConfig):
        if importlib.util.find_spec("alpaca_eval") is None:
            errors.append("eval=alpaca_eval needs the alpaca_eval package: pip install -e '.[eval]'")
        elif not _alpaca_annotator_exists(bench.annotator):
            errors.append(f"eval.annotator={bench.annotator!r} is not an annotator config shipped "
                          "with alpaca_eval (see alpaca_eval/evaluators_configs/)")
        if bench.lc_df_gamed is not None and not Path(bench.lc_df_gamed).expanduser().exists():
            errors.append(f"eval.lc_df_gamed={bench.lc_df_gamed!r} does not exist (give df_gamed.csv "
                          "or the folder holding it, or null)")
    if isinstance(bench, MTBenchConfig):
        missing = sorted(set(MT_BENCH_TEMPERATURES) - set(bench.category_temperatures))
        if missing:
            errors.append(f"eval.category_temperatures lacks {missing}")
    if isinstance(bench, SandboxConfig):
        _check_sandbox(bench, errors)
    if errors:
        raise EvalConfigError("invalid evaluation config:\n  - " + "\n  - ".join(errors))
