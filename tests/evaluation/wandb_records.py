"""Read an offline W&B run file (``run-<id>.wandb``) back into protobuf records.

wandb 0.31 writes it from its Go core and ships no Python reader. The format is LevelDB's log
(wandb's former ``sdk/internal/datastore.py``): a 7-byte header (``:W&B``, magic 0xBEE1, version
0), then 32 KiB blocks of chunks, each ``crc32c:u32 | length:u16 | type:u8 | data`` with type
1 = full, 2 = first, 3 = middle, 4 = last; a block tail shorter than a chunk header is padding.
Each reassembled record is a ``wandb_internal_pb2.Record``.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
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
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        parts.append(chunk)
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(b"".join(parts))
            out.append(rec)
            parts = []
    return out


def history_rows(path: Path) -> list[dict]:
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return rows


def summary(paths) -> dict:
    """The summary updates of one or more segments, later ones winning."""
    out: dict = {}
    for path in paths:
        for rec in records(path):
            if rec.WhichOneof("record_type") == "summary":
                for item in rec.summary.update:
                    out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def run_identity(path: Path) -> dict:
    for rec in records(path):
        if rec.WhichOneof("record_type") == "run":
            return {"id": rec.run.run_id, "project": rec.run.project, "entity": rec.run.entity}
    raise AssertionError(f"no run record in {path}")
