"""Validate a composed training config once, at the entry point, and return typed settings.

Hydra's schema already rejected wrong types and unknown keys set without ``+``; keys added with
``+`` are checked here (``keys.py``), with the paths and ranges of ``inputs.py``. This adds the semantic rules and
collects every problem into one message (torchtune style): each line names the key, the value
and the fix. Nothing heavy is loaded here, so a bad config fails in seconds.
"""
from __future__ import annotations

import inspect
import logging
import math
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from ..config.keys import unknown_keys
from ..config.schema import ACTIONS, METRICS, ORDERS, PRECISIONS, SOURCES, TrainConfig
from ..config.settings import ConfigError, Settings, format_errors
from ..difficulty.router import ROUTERS, RouterSpec  # router=random lives with the other routers
from .inputs import check_inputs, interpolation_problem
from .stage_checks import stage_errors

log = logging.getLogger(__name__)
# Above this an Adam step (about lr per weight) destroys what any pretrained model knows.
LARGEST_USUAL_LEARNING_RATE = 1e-2



def _loss_name(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    if choices is None and HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
    if choices is not None and choices.get("loss") is not None:
        return str(choices["loss"])
    target = str(cfg.loss.get("_target_", "custom"))
    return target.rsplit(".", 1)[-1]


def _check_loss_keys(loss_cfg: DictConfig, errors: list[str]) -> None:
    target = loss_cfg.get("_target_")
    if target is None:
        errors.append("loss._target_ is missing: a loss yaml must name its class, e.g. _target_: prefexp.losses.dpo.DPOLoss")
        return
    try:
        cls = get_class(target)
    except Exception as exc:  # noqa: BLE001 - any import problem is a config problem here
        errors.append(f"loss._target_={target!r} cannot be imported ({exc}); check the class path")
        return
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self"]
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for key in loss_cfg:
        if key != "_target_" and key not in accepted:
            errors.append(f"loss.{key}: unknown hyperparameter for {target.rsplit('.', 1)[-1]}; accepted keys: {accepted}")


def _check_tau(c: TrainConfig, errors: list[str]) -> None:
    r = c.router
    if not math.isfinite(c.tau):
        errors.append(f"tau={c.tau} must be a finite number")
    elif r.name == "quantile":
        if not 0 < c.tau < 1:
            errors.append(f"tau={c.tau} is outside (0, 1) (the fraction of hardest pairs, used by router=quantile); pass e.g. tau=0.1")
    elif r.metric == "rating":
        span = c.dataset.score_max - c.dataset.score_min
        if not 0 <= c.tau <= span:
            errors.append(
                f"tau={c.tau} is outside [0, {span:g}] (the rating margin range of dataset scores "
                f"{c.dataset.score_min:g}-{c.dataset.score_max:g}, used by router={r.name}); pass e.g. tau=0.5"
            )
    if r.name == "band":
        if r.band_low is None or r.band_high is None:
            errors.append("router.band_low and router.band_high are required for router=band; pass e.g. router.band_low=0.5 router.band_high=3")
        elif r.band_low > r.band_high:
            errors.append(f"router.band_low={r.band_low} > router.band_high={r.band_high}; the band must have low <= high")


def _check_scaling(c: TrainConfig, errors: list[str]) -> None:
    """trainer.devices and the deepspeed group (conf/deepspeed/*.yaml)."""
    d = c.trainer.devices
    if not (d == "auto" or (isinstance(d, int) and not isinstance(d, bool) and d >= 1)):
        errors.append(f"trainer.devices={d!r} must be an integer >= 1 or 'auto' (every CUDA GPU, 1 on CPU)")
    if c.trainer.nodes < 1:
        errors.append(f"trainer.nodes={c.trainer.nodes} must be >= 1")
    endpoint = c.trainer.rdzv_endpoint
    if endpoint is not None and not (endpoint.count(":") == 1 and endpoint.split(":")[1].isdigit()
                                     and endpoint.split(":")[0]):
        errors.append(f"trainer.rdzv_endpoint={endpoint!r} must be host:port (node 0's address and a free port), "
                      "e.g. trainer.rdzv_endpoint=node001:29400")
    if not c.deepspeed.enabled:
        return
    ds, t = c.deepspeed.config, c.trainer
    stage = (ds.get("zero_optimization") or {}).get("stage")
    if stage not in (0, 1, 2, 3):
        errors.append(f"deepspeed.config.zero_optimization.stage={stage!r} must be 0, 1, 2 or 3")
    for key, trainer_key, expected in (("train_micro_batch_size_per_gpu", "per_device_batch_size", t.per_device_batch_size),
                                       ("gradient_accumulation_steps", "gradient_accumulation_steps", t.gradient_accumulation_steps),
                                       ("gradient_clipping", "max_grad_norm", t.max_grad_norm)):
        value = ds.get(key, "auto")
        if value != "auto" and value != expected:
            errors.append(f"deepspeed.config.{key}={value} differs from trainer.{trainer_key}={expected}; "
                          f"interpolate it instead: {key}: ${{trainer.{trainer_key}}}")


def _check_token_cleaning(c: TrainConfig, loss: Any, loss_name: str, errors: list[str]) -> None:
    t = c.token_cleaning
    if not t.enabled:
        return
    if t.level not in ("global", "sample"):
        errors.append(f"token_cleaning.level={t.level!r} is not one of ['global', 'sample']")
    if not 0 < t.keep_fraction <= 1:
        errors.append(f"token_cleaning.keep_fraction={t.keep_fraction} is outside (0, 1]; the paper keeps 0.6")
    if t.base_model is None and c.model.name_or_path != "sandbox":
        errors.append("token_cleaning.base_model is required with a model other than the sandbox: the base "
                      "model theta the SFT model started from, e.g. token_cleaning.base_model=meta-llama/Meta-Llama-3-8B")
    if t.base_model is None and not 1 <= t.base_sft_steps < c.model.sandbox.sft_steps:
        errors.append(f"token_cleaning.base_sft_steps={t.base_sft_steps} must be in [1, model.sandbox.sft_steps="
                      f"{c.model.sandbox.sft_steps}): the base is an earlier point of the sandbox model's SFT")
    if loss is not None and not loss.supports_token_cleaning:
        errors.append(f"token_cleaning={t.level} needs a loss with an SFT term (loss=sft or loss=mixdpo); "
                      f"loss={loss_name} has none")


def _check_reward_model(c: TrainConfig, errors: list[str]) -> None:
    r = c.reward_model
    if not r.learning_rate > 0:
        errors.append(f"reward_model.learning_rate={r.learning_rate} must be > 0")
    if r.max_steps == 0 or r.max_steps < -1:
        errors.append(f"reward_model.max_steps={r.max_steps} must be -1 (num_epochs) or >= 1")
    if not r.num_epochs > 0:
        errors.append(f"reward_model.num_epochs={r.num_epochs} must be > 0")
    if r.precision not in PRECISIONS:
        errors.append(f"reward_model.precision={r.precision!r} is not one of {list(PRECISIONS)}")


def validate(cfg: DictConfig) -> Settings:
    """Check ``cfg`` and build the loss. Raises :class:`ConfigError` listing every problem; the
    settings carry what the stages would otherwise each re-derive (the margin metrics needed)."""
    from ..difficulty.metrics import needed_metrics

    c, errors = _typed(cfg)
    errors, warnings = errors + _key_errors(c), []
    check_inputs(c, errors)  # paths, ranges, the device: before any model or data loads
    if c.trainer.learning_rate > LARGEST_USUAL_LEARNING_RATE:  # valid, but a likely typo (1e3 for 1e-3)
        warnings.append(f"trainer.learning_rate={c.trainer.learning_rate:g} is far above fine-tuning rates "
                        f"(1e-7 .. 1e-3): each Adam step moves every weight by about that much, so the weights "
                        f"will likely blow up; did you mean {c.trainer.learning_rate:g} with a negative exponent?")
    _check_scaling(c, errors)
    errors += _options_errors((("router.on_selected", c.router.on_selected, ACTIONS),
                               ("router.on_rest", c.router.on_rest, ACTIONS)))
    _check_tau(c, errors)
    _check_loss_keys(cfg.loss, errors)
    loss = _built_loss(cfg, errors)
    loss_name = _loss_name(cfg)
    if loss is not None:
        _check_loss_and_router(c, loss, loss_name, errors, warnings)
    _check_token_cleaning(c, loss, loss_name, errors)
    errors += _evaluation_errors(c) + _dependent_errors(c, loss)
    if errors:
        raise ConfigError(format_errors(errors))
    for w in warnings:
        log.warning(w)
    r = c.router
    router = RouterSpec(r.name, c.tau, r.band_low, r.band_high, r.on_selected, r.on_rest, r.selected_weight,
                        r.rest_weight, seed=c.seed)
    return Settings(config=c, loss=loss, loss_name=loss_name, warnings=warnings,
                    metrics=frozenset(needed_metrics(c, loss)), router=router)


def _typed(cfg: DictConfig) -> tuple[TrainConfig, list[str]]:
    """The job's config as the schema's dataclasses, and the ``+`` keys no schema declares (a failing
    interpolation is a config problem here, never a traceback later)."""
    errors: list[str] = []
    job_cfg = cfg.copy()
    with open_dict(job_cfg):
        job_cfg.pop("hydra", None)  # composed in tests with return_hydra_config; not part of the job
    try:
        errors.extend(unknown_keys(job_cfg, TrainConfig))  # keys added with + that no schema declares
        c: TrainConfig = OmegaConf.to_object(job_cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(format_errors([interpolation_problem(job_cfg, exc)])) from None
    return c, errors


def _options_errors(options) -> list[str]:
    return [f"{key}={value!r} is not one of {list(allowed)}" for key, value, allowed in options if value not in allowed]


def _key_errors(c: TrainConfig) -> list[str]:
    """Values outside their options, and the trainer / dataset sizes that cannot work."""
    errors = _options_errors((("dataset.source", c.dataset.source, SOURCES),
                              ("dataset.on_invalid", c.dataset.on_invalid, ("error", "skip")),
                              ("router.name", c.router.name, ROUTERS), ("router.metric", c.router.metric, METRICS),
                              ("curriculum.order", c.curriculum.order, ORDERS)))
    errors += stage_errors(c)
    errors += _options_errors((("trainer.precision", c.trainer.precision, PRECISIONS),
                               ("trainer.resume", c.trainer.resume, ("auto", "never")),
                               ("trainer.on_nonfinite", c.trainer.on_nonfinite, ("stop", "skip"))))
    if c.trainer.on_nonfinite == "skip" and c.deepspeed.enabled:  # its engine steps inside backward()
        errors.append("trainer.on_nonfinite=skip cannot skip a DeepSpeed step (the engine applies it inside the "
                      "backward); use trainer.on_nonfinite=stop with DeepSpeed")
    errors += _options_errors((("logger.backend", c.logger.backend, ("wandb", "none")),
                               ("logger.mode", c.logger.mode, ("offline", "online", "disabled"))))
    t, d = c.trainer, c.dataset
    if d.source in ("hf", "jsonl") and not d.path:
        errors.append(f"dataset.path is required for dataset.source={d.source}; pass dataset.path=<file or hub name>")
    if d.max_prompt_length >= d.max_length:
        errors.append(f"dataset.max_prompt_length={d.max_prompt_length} must be < dataset.max_length={d.max_length}")
    if t.length_group_block < 0 or 0 < t.length_group_block < 2 * t.per_device_batch_size:
        errors.append(f"trainer.length_group_block={t.length_group_block} must be 0 (off) or at least two "
                      f"micro-batches (>= {2 * t.per_device_batch_size}), else it cannot group anything")
    if t.per_device_batch_size < 1:
        errors.append(f"trainer.per_device_batch_size={t.per_device_batch_size} must be >= 1")
    if t.max_steps == 0 or t.max_steps < -1:
        errors.append(f"trainer.max_steps={t.max_steps} must be -1 (no cap) or >= 1")
    return errors


def _built_loss(cfg: DictConfig, errors: list[str]) -> Any:
    """The loss object (None when the config already has problems, or when building it fails)."""
    from hydra.utils import instantiate

    if errors:
        return None
    try:
        return instantiate(cfg.loss)
    except Exception as exc:  # noqa: BLE001
        errors.append(f"loss: {exc.__cause__ or exc}")
        return None


def _check_loss_and_router(c: TrainConfig, loss: Any, loss_name: str, errors: list[str], warnings: list[str]) -> None:
    routes = loss.routes_pairs
    actions = {c.router.on_selected} if c.router.name != "none" else set()
    if "route" in actions and not routes and c.router.name != "none":
        if c.router.on_selected == "route":
            warnings.append(f"tau={c.tau} is ignored: router={c.router.name} selects pairs for the loss's own "
                            f"routing (router.on_selected=route) and loss={loss_name} does not route pairs")
    elif c.router.name in ("none", "band") and not loss.uses_tau:
        warnings.append(f"tau={c.tau} is ignored by loss={loss_name} and router={c.router.name}")
    if c.router.on_rest == "route":
        errors.append("router.on_rest=route is not supported: only the selected (difficult) side can take the loss's routing branch")


def _evaluation_errors(c: TrainConfig) -> list[str]:
    """``evaluate``: null becomes the default (the sandbox is judged by its own benchmark, real models
    when asked); every name must be a benchmark."""
    from ..benchmark_registry import unknown_benchmark

    if c.evaluate is None:
        c.evaluate = ["sandbox"] if c.model.name_or_path == "sandbox" else []
    return [problem for name in c.evaluate if (problem := unknown_benchmark(name, key="evaluate"))]


def _dependent_errors(c: TrainConfig, loss: Any) -> list[str]:
    """Rules of groups that depend on others: the reward model when a margin needs it, multi-response
    data, adapters, held-out pairs, attention kernels."""
    from ..data.groups import check_group_settings  # the multi-response data keys
    from .adapter_and_eval_checks import adapter_problems, heldout_problems
    from .gpu_checks import attn_implementation_problems

    errors: list[str] = []
    uses_router = c.router.name != "none" or c.curriculum.order != "none"
    if (uses_router and c.router.metric == "reward_model") or (loss is not None and loss.margin_metric == "reward_model"):
        _check_reward_model(c, errors)
    return (errors + check_group_settings(c.dataset) + adapter_problems(c) + heldout_problems(c)
            + attn_implementation_problems(c))
