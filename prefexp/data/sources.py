"""Where preference rows come from: the built-in sandbox, the Hugging Face hub, a JSONL file."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config.schema import DatasetConfig

log = logging.getLogger(__name__)


def describe(cfg: DatasetConfig) -> str:
    return "sandbox" if cfg.source == "sandbox" else str(cfg.path)


def load_jsonl(path: str | Path) -> list[dict]:
    rows = []
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset.path={str(path)!r} does not exist")
    with path.open() as f:
        for lineno, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {lineno + 1}: not valid JSON ({exc.msg})") from None
    return rows


def load_hf(path: str, split: str) -> list[dict]:
    """Load through ``datasets.load_dataset``: a hub name, or a local folder / data file."""
    import datasets

    local = Path(path)
    if local.is_dir() and not (local / "dataset_info.json").exists():
        # A folder of data files, e.g. <dir>/<split>.jsonl or <dir>/<split>-*.parquet: let datasets
        # resolve splits from file names exactly as it does for a hub repo.
        ds = datasets.load_dataset(str(local), split=split)
    elif local.is_file():
        suffixes = [x for x in local.suffixes if x not in (".gz", ".bz2", ".xz", ".zst")]
        kind = "json" if suffixes and suffixes[-1] in (".json", ".jsonl") else suffixes[-1].lstrip(".")
        ds = datasets.load_dataset(kind, data_files={split: str(local)}, split=split)
    else:
        ds = datasets.load_dataset(path, split=split)
    return [dict(r) for r in ds]


def load_rows(cfg: DatasetConfig) -> list[dict]:
    if cfg.source == "sandbox":
        from ..sandbox.data import build_sandbox_rows

        from ..errors import InputError
        from ..sandbox.data import RESPONSE_SOURCES

        s = cfg.sandbox
        if s.responses not in RESPONSE_SOURCES:
            raise InputError(f"dataset.sandbox.responses={s.responses!r} is not one of {list(RESPONSE_SOURCES)}")
        model_dir = None
        if s.responses == "reference_samples":  # sampled from the run's reference: build it first
            from dataclasses import asdict

            from ..sandbox.model import ensure_sandbox_model

            if s.cache_dir is None or s.reference is None:
                raise InputError("dataset.sandbox.responses=reference_samples needs dataset.sandbox.reference and "
                                 "dataset.sandbox.cache_dir (conf/dataset/sandbox.yaml sets ${model.sandbox} and "
                                 "${paths.cache_dir}); or pass dataset.sandbox.responses=synthetic")
            model_dir = ensure_sandbox_model(Path(s.cache_dir), **asdict(s.reference))
        rows = build_sandbox_rows(num_prompts=s.num_prompts, seed=s.seed, responses_per_prompt=s.responses_per_prompt,
                                  rater_noise=s.rater_noise, length_bias=s.length_bias, pair_rule=s.pair_rule,
                                  responses=s.responses, model_dir=model_dir, temperature=s.temperature)
    elif cfg.source == "jsonl":
        rows = load_jsonl(cfg.path)
    else:
        rows = load_hf(cfg.path, cfg.split)
    if cfg.max_rows is not None:
        rows = rows[: cfg.max_rows]  # raw rows: with a group layout, max_rows counts prompts, not pairs
    log.info("loaded %d rows from %s", len(rows), describe(cfg))
    if cfg.layout != "pairs":
        rows = _expand_raw_groups(rows, cfg)
    return rows


def _expand_raw_groups(rows: list[dict], cfg: DatasetConfig) -> list[dict]:
    """Pair rows from multi-response rows (``dataset.layout``; prefexp.data.groups)."""
    from functools import partial

    from .groups import check_group_settings, expand_groups
    from .ultrafeedback_raw import ultrafeedback_raw_to_group

    errors = check_group_settings(cfg)
    if errors:  # validate() reports these too; this covers callers that load data without it
        raise ValueError("; ".join(errors))
    to_group = partial(ultrafeedback_raw_to_group, score_key=cfg.score_key)
    return expand_groups(rows, cfg.pair_rule, cfg.pair_seed, cfg.pair_band_low, cfg.pair_band_high,
                         describe(cfg), on_invalid=cfg.on_invalid, to_group=to_group)
