"""Checked cache entries (issue 21, item 1): an edited, truncated, emptied, key-dropped or legacy
file is moved aside as ``*.corrupt``, named in one warning, and rebuilt (prefexp/cachefs.py)."""
from __future__ import annotations

import json
import logging

import pytest

from prefexp.cachefs import cached_json

KEYS = ["0", "1"]
VALUES = {"0": [-1.0, -2.0], "1": [-3.0, -4.0]}


def edit_value(text: str) -> str:
    doc = json.loads(text)
    doc["data"]["0"][0] += 50.0  # +50 nats on chosen: valid JSON, wrong values
    return json.dumps(doc)


def drop_key(text: str) -> str:
    doc = json.loads(text)
    del doc["data"]["1"]
    return json.dumps(doc)


@pytest.mark.parametrize("damage, why", [
    (edit_value, "checksum mismatch"),
    (lambda text: text[: len(text) // 2], "not valid JSON"),
    (lambda text: "", "empty file"),
    (drop_key, "checksum mismatch"),
    (lambda text: json.dumps(VALUES), "older prefexp version"),
])
def test_failed_entry_is_moved_aside_warned_once_and_rebuilt(tmp_path, caplog, damage, why):
    entry, calls = tmp_path / "entry.json", []

    def compute():
        calls.append(1)
        return VALUES

    assert cached_json(entry, compute, what="test", keys=KEYS) == (VALUES, True)
    assert cached_json(entry, compute, what="test", keys=KEYS) == (VALUES, False)  # a hit computes nothing
    entry.write_text(damage(entry.read_text()))
    with caplog.at_level(logging.WARNING):
        assert cached_json(entry, compute, what="test", keys=KEYS) == (VALUES, True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and why in warnings[0] and "entry.json.corrupt" in warnings[0]
    assert len(calls) == 2 and (tmp_path / "entry.json.corrupt").is_file()
    entry.write_text("")  # a second failure does not overwrite the first piece of evidence
    cached_json(entry, compute, what="test", keys=KEYS)
    assert (tmp_path / "entry.json.corrupt-1").is_file()
