"""Local data files: ``.jsonl``, ``.jsonl.gz``, ``.json`` (a JSON array, or JSON lines) and ``.parquet``.

One reader for every local file, whatever the dataset option (``dataset=jsonl``, or a local
``dataset.path`` of ``dataset=ultrafeedback`` / ``hh_rlhf``), so each format is read the same way.
JSON-family files are parsed line by line here rather than by ``datasets`` because a bad line must
be named by its 1-based *physical* line number (blank lines counted; they hold no row), and
``dataset.on_invalid=skip`` must be able to skip an undecodable line and count it. Parquet has no
lines: its rows are numbered from 1. Gzip is recognised by its magic bytes, not only its suffix.

Every row comes back as a :class:`SourceRow`: a dict that remembers where it came from, which
``records.to_pairs`` uses to name the line of a bad row.
"""
from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from .skips import not_shown, skip

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


class DataFileError(InputError):
    """A data file that cannot be read: missing, a directory, not JSON, not UTF-8, unknown format."""


class SourceRow(dict):
    """A row plus its place in the source: ``where`` is e.g. ``"line 7"`` or ``"row 3"`` (1-based)."""

    where: str = ""


def check_data_file(path: str | Path, key: str = "dataset.path") -> Path:
    """The path as a readable file, or a :class:`DataFileError` naming ``key``, the value and the fix."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DataFileError(f"{key}={str(path)!r} is a directory, not a data file; pass the file itself "
                            f"(one of {', '.join(SUFFIXES)}), e.g. {key}={p / 'train.jsonl'}")
    if not p.exists():
        raise DataFileError(f"{key}={str(path)!r} does not exist; check the path (relative paths start from "
                            f"the directory you launched in)")
    return p


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def _raw_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            yield from f
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise DataFileError(f"{path}: cannot be read as gzip ({exc}); re-download or re-compress the file") from None


def _first_char(path: Path) -> str:
    for raw in _raw_lines(path):
        text = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
        if text:
            return text[0]
    return ""


def _json_array_rows(path: Path) -> list[SourceRow]:
    """A ``[{...}, {...}]`` file: parsed whole, each element numbered by the line it starts on."""
    data = b"".join(_raw_lines(path))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFileError(f"{path}, line {line}: not valid UTF-8 (byte {data[exc.start]:#04x}); "
                            f"re-save the file as UTF-8") from None
    decoder = json.JSONDecoder()
    try:
        items = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}); fix the file") from None
    if not isinstance(items, list):
        raise DataFileError(f"{path}, line 1: a .json data file must hold an array of row objects or one object per line")
    # Element start lines: re-scan with raw_decode so each row can be named by its line.
    rows: list[SourceRow] = []
    pos = text.index("[") + 1
    for item in items:
        while text[pos] in " \t\r\n,":
            pos += 1
        row = SourceRow(item) if isinstance(item, dict) else SourceRow(_not_an_object=item)
        row.where = f"line {text.count(chr(10), 0, pos) + 1}"
        rows.append(row)
        _, pos = decoder.raw_decode(text, pos)
    return rows


def _json_lines_rows(path: Path, on_invalid: str) -> list[SourceRow]:
    rows: list[SourceRow] = []
    skipped: Counter[str] = Counter()
    fix = "fix the line, or pass dataset.on_invalid=skip to skip such lines"
    for lineno, raw in enumerate(_raw_lines(path), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
        else:
            if lineno == 1:
                line = line.lstrip("\ufeff")
            if not line.strip():
                continue  # blank lines hold no row but still count as lines
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"not valid JSON ({exc.msg} at column {exc.colno})"
            else:
                row = SourceRow(value) if isinstance(value, dict) else SourceRow(_not_an_object=value)
                row.where = f"line {lineno}"
                rows.append(row)
                continue
        if on_invalid != "skip":
            raise DataFileError(f"{path}, line {lineno}: {reason}; {fix}")
        skip(log, str(path), f"line {lineno}", reason, sum(skipped.values()))
        skipped[reason.split(" (")[0]] += 1
    if skipped:
        log.warning("skipped %d unreadable line(s) of %s: %s%s", sum(skipped.values()), path, dict(skipped),
                    not_shown(sum(skipped.values())))
    return rows


def _parquet_rows(path: Path) -> list[SourceRow]:
    import datasets

    ds = datasets.load_dataset("parquet", data_files={"train": str(path)}, split="train")
    return numbered_rows(ds, "row")


def read_data_file(path: str | Path, on_invalid: str = "error") -> list[SourceRow]:
    """Rows of one local file, each tagged with its 1-based line (JSON) or row (parquet)."""
    p = check_data_file(path)
    name = p.name.lower()
    if name.endswith(".parquet"):
        return _parquet_rows(p)
    if not any(name.endswith(s) for s in SUFFIXES) and not name.endswith(".gz"):
        log.warning("%s: unknown suffix; reading it as JSON lines", p)
    if _first_char(p) == "[":
        return _json_array_rows(p)
    return _json_lines_rows(p, on_invalid)


def not_an_object(row: dict) -> str | None:
    """The reason a parsed line cannot be a row (it was a JSON list, number or string), else None."""
    if "_not_an_object" in row and len(row) == 1:
        return f"expected a JSON object with prompt/chosen/rejected, got {type(row['_not_an_object']).__name__}"
    return None


__all__ = ["DataFileError", "SourceRow", "check_data_file", "read_data_file", "not_an_object"]


def numbered_rows(records, what: str) -> list[SourceRow]:
    """Rows of a table (parquet, a hub split) named ``<what> N``, 1-based, for error messages."""
    rows = []
    for n, record in enumerate(records, start=1):
        row = SourceRow(record)
        row.where = f"{what} {n}"
        rows.append(row)
    return rows
