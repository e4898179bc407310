"""AlpacaEval benchmark through the ``alpaca_eval`` package, with any OpenAI-compatible judge.

How alpaca_eval is kept inside the eval dir and away from the key (alpaca_eval 0.6.6 source):
* the annotator config (default ``weighted_alpaca_eval_gpt4_turbo``) is copied from the package
  to ``annotator/<name>/configs.yaml`` with the judge model, an absolute prompt path and
  ``client_config_path`` (a ``_openai_completion_helper`` keyword, so no env var has to be set
  before alpaca_eval is imported);
* that client config names ``EnvKeyOpenAI``, an ``openai.OpenAI`` that reads the key from the
  environment variable named by ``eval.judge.api_key_env``: the file holds the variable's
  name, never the key;
* ``caching_path`` = ``annotations_cache.json`` (saved after every ``eval.chunksize``
  annotations, so a re-run resumes), ``output_path`` = ``alpaca_eval/``,
  ``precomputed_leaderboard=None`` and no GLM weights are saved (they default to site-packages).
"""
from __future__ import annotations

import logging
from pathlib import Path

import openai
import yaml

from .alpaca_data import find_df_gamed, load_reference, offline_hub, stage_df_gamed
from .config import AlpacaEvalConfig
from .generation import GenRequest, describe, open_backend
from .judge_client import JudgeError, JudgeUnreachable, api_key, check_reachable
from .manifest import Checkpoint
from .store import generation_meta, read_json, reusable, save_outputs

log = logging.getLogger(__name__)
FULL_SET = 805
METRIC_KEYS = ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total",
               "discrete_win_rate", "avg_length")


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


def generate_outputs(cfg: AlpacaEvalConfig, ckpt: Checkpoint, rows: list[dict], name: str,
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


def length_controlled(cfg: AlpacaEvalConfig, annotations, rows: list[dict], out_dir: Path) -> dict:
    """LC win rate from alpaca_eval's GLM, or null with the reason when it cannot be exact."""
    none = {"length_controlled_winrate": None, "lc_standard_error": None}
    # The GLM looks up each instruction's difficulty by the annotation's row position, so the
    # annotations must be the eval set's first N instructions, in order, none missing.
    if [a["instruction"] for a in annotations] != [r["instruction"] for r in rows]:
        return {**none, "length_controlled_note": "not computed: annotations do not cover the first "
                f"{len(rows)} instructions in order (missing judgments), so difficulties would be misaligned"}
    found, source = find_df_gamed(cfg.data_dir, out_dir / "cache" / "hf_hub")
    if found is None:
        return {**none, "length_controlled_note": f"not computed: {source}"}
    import alpaca_eval.constants as ae_constants
    import pandas as pd
    from alpaca_eval.metrics.glm_winrate import get_length_controlled_winrate

    lc_cache = stage_df_gamed(found, out_dir / "cache" / "lc_hub")
    old = ae_constants.DEFAULT_CACHE_DIR
    ae_constants.DEFAULT_CACHE_DIR = str(lc_cache)  # read at call time by _get_featurized_data
    try:
        with offline_hub():
            m = get_length_controlled_winrate(pd.DataFrame(annotations).reset_index(drop=True),
                                              glm_name=cfg.lc_glm, save_weights_dir=None)
    finally:
        ae_constants.DEFAULT_CACHE_DIR = old
    note = f"{cfg.lc_glm} with df_gamed.csv from {source}"
    if len(rows) < FULL_SET:
        note += f"; on {len(rows)} of {FULL_SET} instructions, so not comparable to published LC numbers"
    return {"length_controlled_winrate": float(m["length_controlled_winrate"]),
            "lc_standard_error": float(m["lc_standard_error"]), "length_controlled_note": note}


def annotate(cfg: AlpacaEvalConfig, outputs: list[dict], rows: list[dict], name: str, out_dir: Path):
    """alpaca_eval's ``evaluate`` (win rate only: LC is computed apart, see ``length_controlled``).
    A judge failure surfaces as ``JudgeError`` naming the endpoint; finished chunks stay cached."""
    from alpaca_eval import evaluate

    keep = ("instruction", "output", "generator", "dataset")
    cache = out_dir / "annotations_cache.json"
    try:
        return evaluate(
            model_outputs=[{k: o.get(k) for k in keep} for o in outputs],
            reference_outputs=[{k: r.get(k) for k in keep} for r in rows],
            annotators_config=str(write_annotator_config(cfg, out_dir)), name=name,
            output_path=str(out_dir / "alpaca_eval"), precomputed_leaderboard=None,
            is_overwrite_leaderboard=True, is_return_instead_of_print=True, is_cache_leaderboard=False,
            fn_metric="get_winrate", sort_by="win_rate", caching_path=str(cache),
            annotation_kwargs={"chunksize": cfg.chunksize})
    except openai.APIError as err:
        kind = JudgeUnreachable if type(err) is openai.APIConnectionError else JudgeError
        raise kind(f"judge endpoint {cfg.judge.base_url} (model {cfg.judge.model}): {type(err).__name__}: "
                   f"{err}\nannotations received so far are kept in {cache}; a re-run resumes from them") from err


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def run(cfg: AlpacaEvalConfig, ckpt: Checkpoint, out_dir: Path) -> dict:
    check_reachable(cfg.judge.base_url, cfg.judge.connect_timeout_s)  # fail before generating
    api_key(cfg.judge.api_key_env)
    name = cfg.model_name or ckpt.default_model_name()
    with offline_hub(cfg.data_dir is not None):  # local data: alpaca_eval must not reach the hub
        ref = load_reference(cfg.reference, cfg.data_dir, out_dir / "cache" / "hf_hub")
        rows = ref.rows[: cfg.limit] if cfg.limit is not None else ref.rows
        outputs = generate_outputs(cfg, ckpt, rows, name, out_dir)
        leaderboard, annotations = annotate(cfg, outputs, rows, name, out_dir)
    metrics = {k: _plain(leaderboard.loc[name, k]) for k in METRIC_KEYS if k in leaderboard.columns}
    n_missing = len(rows) - len(annotations)
    metrics.update(length_controlled(cfg, annotations, rows, out_dir))
    notes = [metrics["length_controlled_note"]]
    if n_missing:
        notes.append(f"{n_missing} instruction(s) got no annotation from the judge and are left out")
    return {
        "metrics": metrics,
        "model_name": name,
        "n_items": len(rows),
        "data": {**ref.describe(), "reference": cfg.reference},
        "judge": {"base_url": cfg.judge.base_url, "model": cfg.judge.model, "annotator": cfg.annotator},
        "generation": describe(cfg.generation),
        "files": {"model_outputs": "model_outputs.json", "annotations": "alpaca_eval/annotations.json",
                  "annotation_cache": "annotations_cache.json"},
        "notes": notes,
    }
