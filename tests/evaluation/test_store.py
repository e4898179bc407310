"""Saved outputs are reused only under identical settings; JSONL survives torn writes."""
from __future__ import annotations

import threading

from prefexp.evaluation.store import JsonlAppender, read_jsonl, reusable, save_outputs


def test_outputs_reused_only_with_the_same_meta(tmp_path):
    path = tmp_path / "model_outputs.json"
    meta = {"model": {"step": 7}, "generation": {"temperature": 0.7}}
    assert not reusable(path, meta, regenerate=False)
    save_outputs(path, [{"instruction": "i", "output": "o"}], meta)
    assert reusable(path, meta, regenerate=False)
    assert not reusable(path, meta, regenerate=True)
    assert not reusable(path, {**meta, "generation": {"temperature": 0.0}}, regenerate=False)
    assert not reusable(path, {**meta, "model": {"step": 8}}, regenerate=False)


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "jud')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_appender_is_thread_safe(tmp_path):
    out = JsonlAppender(tmp_path / "j.jsonl")
    threads = [threading.Thread(target=lambda i=i: [out.append({"t": i, "k": k, "pad": "x" * 500})
                                                    for k in range(20)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = read_jsonl(tmp_path / "j.jsonl")
    assert len(rows) == 160 and len({(r["t"], r["k"]) for r in rows}) == 160
