"""Files of the evaluation stage: atomic JSON, append-only JSONL, saved generations.

Generated answers are saved next to a ``.meta.json`` that records who generated them and how
(checkpoint identity + generation settings). A re-run reuses them only if that record matches,
so judging can run again without generating again, but changed settings never mix answers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Optional

log = logging.getLogger(__name__)


def write_json(path: Path, obj: Any) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a torn last line (a crash mid-write) is skipped with a warning."""
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s:%d is not JSON (interrupted write?); skipped", path, n)
    return rows


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(tmp, path)


class JsonlAppender:
    """Append one JSON row per call and flush it to disk, from any thread: what is received is
    kept even if the process dies right after."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def sha256_file(path: Path, n_hex: int = 16) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:n_hex]


def meta_path(path: Path) -> Path:
    return path.with_name(path.stem + ".meta.json")


def reusable(path: Path, meta: dict, regenerate: bool) -> bool:
    """True if ``path`` holds outputs generated under exactly ``meta``."""
    mp = meta_path(path)
    if regenerate or not path.exists() or not mp.exists():
        return False
    saved = read_json(mp)
    if saved != meta:
        log.info("%s was generated with other settings; generating again (%s vs %s)", path, saved, meta)
        return False
    return True


def save_outputs(path: Path, data: Any, meta: dict, jsonl: bool = False) -> None:
    (write_jsonl if jsonl else write_json)(path, data)
    write_json(meta_path(path), meta)


def generation_meta(model_identity: dict, generation: dict, extra: Optional[dict] = None) -> dict:
    """The record that decides whether saved outputs can be reused."""
    return json.loads(json.dumps({"model": model_identity, "generation": generation, **(extra or {})}))
