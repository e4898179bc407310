"""Where preference rows come from: the built-in sandbox, a local file, or the Hugging Face hub.

Every local file (``.jsonl``, ``.jsonl.gz``, ``.json``, ``.parquet``) goes through
:func:`prefexp.data.files.read_data_file`, whatever the dataset option, so rows keep their 1-based
line for error messages. A local folder or a hub name goes through ``datasets.load_dataset``.
Then ``dataset.columns`` renames columns, and ``dataset.layout`` turns other layouts (HH-RLHF
transcripts, raw UltraFeedback groups) into prompt/chosen/rejected rows. docs/data.md has the rules.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..config.schema import ColumnMap, DatasetConfig
from .files import DataFileError, SourceRow, check_data_file, numbered_rows, read_data_file

log = logging.getLogger(__name__)


def describe(cfg: DatasetConfig) -> str:
    return "sandbox" if cfg.source == "sandbox" else str(cfg.path)


def load_jsonl(path: str | Path, on_invalid: str = "error") -> list[dict]:
    """Rows of a local data file (kept under its old name; any format of :mod:`prefexp.data.files`)."""
    return read_data_file(path, on_invalid)


def load_hf(path: str, split: str, on_invalid: str = "error") -> list[dict]:
    """A local data file (read here), a local folder or a hub name (``datasets.load_dataset``)."""
    local = Path(path).expanduser()
    if local.is_file():
        return read_data_file(local, on_invalid)
    import datasets

    try:
        if local.is_dir() and not (local / "dataset_info.json").exists():
            # A folder of data files, e.g. <dir>/<split>.jsonl or <dir>/<split>-*.parquet: let datasets
            # resolve splits from file names exactly as it does for a hub repo.
            ds = datasets.load_dataset(str(local), split=split)
        else:
            ds = datasets.load_dataset(path, split=split)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as exc:  # DatasetNotFoundError is a FileNotFoundError
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataFileError(f"dataset.path={path!r} split={split!r}: not a local file, and datasets cannot load it "
                            f"({type(exc).__name__}: {reason}); check the name and dataset.split, or pass a local "
                            f"file") from None
    return numbered_rows(ds, f"{split} row")


def rename_columns(rows: list[dict], columns: ColumnMap) -> list[dict]:
    """Apply ``dataset.columns`` (field <- the source's column, copied); a missing column stays missing
    and the row error names both (``records.to_pairs`` reads ``row.renamed``)."""
    mapping = {field: column for field, column in vars(columns).items() if column is not None and column != field}
    if not mapping:
        return rows
    out = []
    for row in rows:
        new = SourceRow({k: v for k, v in row.items() if k not in mapping})  # a mapped field's own name is replaced
        for field, column in mapping.items():
            if column in row:
                new[field] = row[column]
        new.where = getattr(row, "where", "")
        new.renamed = mapping
        out.append(new)
    return out


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
        rows = load_jsonl(check_data_file(cfg.path), cfg.on_invalid)
    else:
        rows = load_hf(cfg.path, cfg.split, cfg.on_invalid)
    if cfg.max_rows is not None:
        rows = rows[: cfg.max_rows]  # raw rows: with a group layout, max_rows counts prompts, not pairs
    log.info("loaded %d rows from %s", len(rows), describe(cfg))
    rows = rename_columns(rows, cfg.columns)
    if cfg.layout == "hh_rlhf":
        rows = _transcripts_to_pairs(rows)
    elif cfg.layout != "pairs":
        rows = _expand_raw_groups(rows, cfg)
    return rows


def _transcripts_to_pairs(rows: list[dict]) -> list[dict]:
    """HH-RLHF rows -> prompt/chosen/rejected; a row that fails keeps a ``_layout_error`` for to_pairs."""
    from .hh_rlhf import hh_rlhf_to_pair

    out = []
    for row in rows:
        try:
            new = SourceRow(hh_rlhf_to_pair(row))
        except ValueError as exc:
            new = SourceRow(_layout_error=f"{exc} (dataset.layout=hh_rlhf)")
        new.where = getattr(row, "where", "")
        out.append(new)
    return out


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
