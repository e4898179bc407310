"""AlpacaEval benchmark through the ``alpaca_eval`` package, with any OpenAI-compatible judge.

How alpaca_eval is kept inside the eval dir and away from the key (alpaca_eval 0.6.6 source):
* the annotator config (default ``weighted_alpaca_eval_gpt4_turbo``) is copied from the package
  to ``annotator/<name>/configs.yaml`` with the judge model, an absolute prompt path and
  ``client_config_path`` (a ``_openai_completion_helper`` keyword, so no env var has to be set
  before alpaca_eval is imported);
* that client config names ``EnvKeyOpenAI``, an ``openai.OpenAI`` that reads the key from the
  environment variable named by ``eval.judge.api_key_env``: the file holds the variable's
  name, never the key;
* the judging itself (prompts, persistence, failures) is ``alpaca_judging``; the metrics are
  alpaca_eval's ``get_winrate`` on the annotations (and its LC GLM, when ``df_gamed.csv`` is
  available); no GLM weights are saved (they default to site-packages).

Entries (``sources``): a model (checkpoint or HF) is generated for, then judged; an outputs file is
judged; an annotations file is only scored.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import openai
import yaml

from . import subsets
from .alpaca_data import find_df_gamed, load_reference, offline_hub, stage_df_gamed
from .alpaca_judging import annotate
from .config import AlpacaEvalConfig, EvalConfigError
from .generation import GenRequest, describe, open_backend
from .given_files import check_preferences, read_given
from .judge_client import api_key, check_reachable
from .sources import Source
from .store import generation_meta, read_json, reusable, save_outputs, write_json

log = logging.getLogger(__name__)
FULL_SET = 805
PROMPT_VERSION = "alpaca_eval {version} evaluators_configs/{annotator}"


class EnvKeyOpenAI(openai.OpenAI):
    """``openai.OpenAI`` taking its key from the environment variable ``api_key_env``."""

    def __init__(self, api_key_env: str, **kwargs):
        super().__init__(api_key=api_key(api_key_env), **kwargs)


def write_annotator_config(cfg: AlpacaEvalConfig, out_dir: Path) -> Path:
    """The package's annotator config, re-pointed at the configured judge; returns its path."""
    from alpaca_eval.constants import EVALUATORS_CONFIG_DIR

    root = out_dir / "annotator"
    client_path = root / "client_config.yaml"
    j = cfg.judge
    client = {"default": [{"client_class": f"{__name__}.EnvKeyOpenAI", "api_key_env": j.api_key_env,
                           "base_url": j.base_url, "timeout": j.timeout_s, "max_retries": j.max_retries}]}
    root.mkdir(parents=True, exist_ok=True)
    client_path.write_text(yaml.safe_dump(client, sort_keys=False))

    packaged = yaml.safe_load((EVALUATORS_CONFIG_DIR / cfg.annotator / "configs.yaml").read_text())
    for name, ann in packaged.items():
        if ann.get("fn_completions") != "openai_completions":
            raise ValueError(f"eval.annotator={cfg.annotator!r} uses {ann.get('fn_completions')!r}, "
                             "not an OpenAI-compatible endpoint; choose an openai_completions annotator")
        template = EVALUATORS_CONFIG_DIR / ann["prompt_template"]
        ann["prompt_template"] = str(template)  # absolute: a missing file must not become the prompt
        kwargs = ann.setdefault("completions_kwargs", {})
        kwargs.update(model_name=j.model, client_config_path=str(client_path), num_procs=j.concurrency)
        if "<|im_start|>" in template.read_text():
            # alpaca_eval guesses chat vs completions from the model name ("instruct" -> completions);
            # the template, not the judge's name, decides.
            kwargs["requires_chatml"] = True
    path = root / cfg.annotator / "configs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(packaged, sort_keys=False))
    return path


def generate_outputs(cfg: AlpacaEvalConfig, ckpt: Source, rows: list[dict], name: str,
                     out_dir: Path) -> list[dict]:
    """``model_outputs.json`` in AlpacaEval's format, reusing saved answers when possible."""
    path = out_dir / "model_outputs.json"
    g = cfg.generation
    meta = generation_meta(ckpt.describe(), describe(g), {"model_name": name})
    saved = {r["instruction"]: r for r in read_json(path)} if reusable(path, meta, g.regenerate) else {}
    todo = [r for r in rows if r["instruction"] not in saved]
    if todo:
        log.info("alpaca_eval: generating %d outputs (%d reused)", len(todo), len(saved))
        with open_backend(g, str(ckpt.model_dir), ckpt.chat_template, out_dir) as backend:
            outs = backend.generate([GenRequest.chat([{"role": "user", "content": r["instruction"]}],
                                                     g.temperature, g.max_new_tokens, g.top_p) for r in todo])
        for r, out in zip(todo, outs):
            saved[r["instruction"]] = {"instruction": r["instruction"], "output": out, "generator": name,
                                       "dataset": r.get("dataset")}
        save_outputs(path, list(saved.values()), meta)
    return [saved[r["instruction"]] for r in rows]


def length_controlled(cfg: AlpacaEvalConfig, annotations: list[dict], full_rows: list[dict],
                      out_dir: Path, subset: Optional[dict]) -> dict:
    """LC win rate from alpaca_eval's GLM, or null with the reason when its inputs are missing.
    The GLM reads each instruction's difficulty by the frame's index, so the index is set to the
    instruction's position in the full 805 set (a sample or a missing item stays aligned)."""
    none = {"length_controlled_winrate": None, "lc_standard_error": None}
    found, source = find_df_gamed(cfg.lc_df_gamed, cfg.data_dir, out_dir / "cache" / "hf_hub")
    if found is None:
        return {**none, "length_controlled_note": f"not computed: {source}"}
    if not annotations:
        return {**none, "length_controlled_note": "not computed: no annotations"}
    import alpaca_eval.constants as ae_constants
    import pandas as pd
    from alpaca_eval.metrics.glm_winrate import get_length_controlled_winrate

    position = {r["instruction"]: i for i, r in enumerate(full_rows)}
    frame = pd.DataFrame(annotations).drop(columns=["index"], errors="ignore")
    frame.index = [position[a["instruction"]] for a in annotations]
    lc_cache = stage_df_gamed(found, out_dir / "cache" / "lc_hub")
    old = ae_constants.DEFAULT_CACHE_DIR
    ae_constants.DEFAULT_CACHE_DIR = str(lc_cache)  # read at call time by _get_featurized_data
    try:
        with offline_hub():
            m = get_length_controlled_winrate(frame, glm_name=cfg.lc_glm, save_weights_dir=None)
    finally:
        ae_constants.DEFAULT_CACHE_DIR = old
    note = f"{cfg.lc_glm} with df_gamed.csv from {source}"
    if subset is not None or len(annotations) < len(full_rows):
        note += (f"; on {len(annotations)} of {len(full_rows)} instructions, so not comparable to "
                 "published LC numbers")
    return {"length_controlled_winrate": float(m["length_controlled_winrate"]),
            "lc_standard_error": float(m["lc_standard_error"]), "length_controlled_note": note}


def win_rate_metrics(annotations: list[dict], outputs: list[str]) -> dict:
    """alpaca_eval's ``get_winrate`` (what its leaderboard reports) plus avg_length (characters)."""
    from alpaca_eval.metrics import get_winrate

    m = {k: _plain(v) for k, v in get_winrate(annotations).items()} if annotations else {"win_rate": None}
    m["avg_length"] = int(sum(map(len, outputs)) / len(outputs)) if outputs else None
    return m


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _given_outputs(path: Path, rows: list[dict], model_name: Optional[str]) -> tuple[list[dict], str]:
    given, name = read_given(path, "alpaca_outputs", model_name)
    by_instruction = {g["instruction"]: g for g in given}
    missing = [r["instruction"] for r in rows if r["instruction"] not in by_instruction]
    if missing:
        raise EvalConfigError(f"outputs={path}: no output for {len(missing)} of the {len(rows)} instructions "
                              f"evaluated (first: {missing[0][:60]!r}); give all, or set eval.limit")
    return [{**by_instruction[r["instruction"]], "generator": name, "dataset": r.get("dataset")}
            for r in rows], name


def _given_annotations(path: Path, rows: list[dict], model_name: Optional[str]) -> tuple[list[dict], str]:
    given, name = read_given(path, "alpaca_annotations", model_name)
    check_preferences(path, given)
    by_instruction = {a["instruction"]: a for a in given}
    missing = [r["instruction"] for r in rows if r["instruction"] not in by_instruction]
    if missing:
        raise EvalConfigError(f"annotations={path}: no annotation for {len(missing)} of the {len(rows)} "
                              f"instructions evaluated (first: {missing[0][:60]!r}); check eval.reference")
    return [by_instruction[r["instruction"]] for r in rows], name


def _judge_record(cfg: AlpacaEvalConfig) -> dict:
    import alpaca_eval

    return {"base_url": cfg.judge.base_url, "model": cfg.judge.model, "annotator": cfg.annotator,
            "prompt_version": PROMPT_VERSION.format(version=alpaca_eval.__version__, annotator=cfg.annotator)}


def run(cfg: AlpacaEvalConfig, source: Source, out_dir: Path) -> dict:
    with offline_hub(cfg.data_dir is not None):  # local data: alpaca_eval must not reach the hub
        ref = load_reference(cfg.reference, cfg.data_dir, out_dir / "cache" / "hf_hub")
    category = lambda r: r.get("dataset") or "all"  # noqa: E731
    rows = subsets.stratified_sample(ref.rows, category, cfg.limit, cfg.limit_seed)
    subset = subsets.describe(rows, category, len(ref.rows), cfg.limit_seed, "instructions")
    failures, n_requests = [], 0
    if source.kind == "annotations":
        annotations, name = _given_annotations(source.path, rows, cfg.model_name)
        outputs = [a["output_2"] for a in annotations if isinstance(a.get("output_2"), str)]
        judge, files = {"annotations": str(source.path)}, {}
    else:
        check_reachable(cfg.judge.base_url, cfg.judge.connect_timeout_s)  # fail before generating
        api_key(cfg.judge.api_key_env)
        if source.kind == "outputs":
            model_outputs, name = _given_outputs(source.path, rows, cfg.model_name)
        else:
            name = cfg.model_name or source.default_model_name()
            with offline_hub(cfg.data_dir is not None):
                model_outputs = generate_outputs(cfg, source, rows, name, out_dir)
        result = annotate(cfg, write_annotator_config(cfg, out_dir), model_outputs, rows, out_dir)
        annotations, failures, n_requests = result.annotations, result.failures, result.n_requests
        write_json(out_dir / "annotations.json", annotations)
        outputs = [o["output"] for o in model_outputs]
        judge = _judge_record(cfg)
        files = {"annotations": "annotations.json", "judge_completions": "judge_completions.jsonl",
                 "failed_judgments": "judge_completions.failed.jsonl"}
        if source.kind != "outputs":
            files["model_outputs"] = "model_outputs.json"
    metrics = win_rate_metrics(annotations, outputs)
    metrics["n_failed"] = len(failures)
    metrics.update(length_controlled(cfg, annotations, ref.rows, out_dir, subset))
    notes = [metrics["length_controlled_note"]]
    if subset is not None:
        notes.append(subset["note"])
    if failures:
        notes.append(f"{len(failures)} instruction(s) have no judgment yet and are left out of every number; "
                     "re-run the same command to ask for them")
    return {
        "metrics": metrics,
        "model_name": name,
        "n_items": len(rows),
        "subset": subset,
        "failed_items": [{**f.job, "reason": f.reason} for f in failures],
        "judge_requests": n_requests,
        "data": {**ref.describe(), "reference": cfg.reference},
        "judge": judge,
        "generation": describe(cfg.generation) if source.kind in ("checkpoint", "model") else None,
        "files": files,
        "notes": notes,
    }
