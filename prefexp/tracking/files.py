"""Read an offline W&B run file (``run-<id>.wandb``) back into protobuf records.

wandb 0.31 writes it from its Go core and ships no Python reader any more (its former
``wandb.sdk.internal.datastore`` is gone); the records themselves are wandb's own protobufs
(``wandb.proto.wandb_internal_pb2.Record``). The file is LevelDB's log format: a 7-byte header
(``:W&B``, magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each
``crc32c:u32 | length:u16 | type:u8 | data`` with type 1 = full, 2 = first, 3 = middle, 4 = last;
a block tail shorter than a chunk header is padding. A file cut short (a killed run) ends at its
last whole record.

Used by training (a resumed run continues its W&B step after the last one on disk) and by the
evaluation (its history point comes after the training's last step), and by the tests.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterable

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    out, pos, parts = [], HEADER, []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zero padding at a block end
            pos += left
            continue
        if pos + HEADER + length > len(data):
            break  # the last record was cut off (the process was killed while writing it)
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        parts.append(chunk)
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(b"".join(parts))
            out.append(rec)
            parts = []
    return out


def _item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def history_rows(path: Path) -> list[dict]:
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append({_item_key(i): json.loads(i.value_json) for i in rec.history.item})
    return rows


def summary(paths) -> dict:
    """The summary updates of one or more segments, later ones winning."""
    out: dict = {}
    for path in paths:
        for rec in records(path):
            if rec.WhichOneof("record_type") == "summary":
                for item in rec.summary.update:
                    out[_item_key(item)] = json.loads(item.value_json)
    return out


def config(path: Path) -> dict:
    """The run's config: the run record's, then every later config update (top-level keys)."""
    out: dict = {}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        updates = rec.run.config.update if kind == "run" else rec.config.update if kind == "config" else ()
        for item in updates:
            out[_item_key(item)] = json.loads(item.value_json)
    return out


def run_identity(path: Path) -> dict:
    for rec in records(path):
        if rec.WhichOneof("record_type") == "run":
            r = rec.run
            return {"id": r.run_id, "project": r.project, "entity": r.entity, "name": r.display_name,
                    "group": r.run_group, "tags": list(r.tags)}
    raise AssertionError(f"no run record in {path}")


def segments(run_dir: Path, run_id: str) -> list[Path]:
    """The offline files of one run id under ``<run dir>/wandb``, oldest first (one per start)."""
    return sorted(Path(run_dir).glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))


def last_steps(paths: Iterable[Path]) -> tuple[int, int]:
    """(last ``_step``, last ``train/global_step``) in these files' history; (-1, 0) if none."""
    step, global_step = -1, 0
    for path in paths:
        try:
            rows = history_rows(path)
        except (OSError, ValueError):  # an unreadable segment holds no usable steps
            continue
        for row in rows:
            step = max(step, int(row.get("_step", -1)))
            global_step = max(global_step, int(row.get("train/global_step", 0) or 0))
    return step, global_step
