"""Caches under concurrency and kills (issue 12, item 4): concurrent cold runs compute once, the
others wait and reuse; nobody sees a half-written entry; a killed build's leftovers are cleaned.

Workers are real processes (the race is between processes, not threads). The reference pass runs
on a bigram model whose log-probs are known in closed form, so the cached values are checked too.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefexp.cachefs import BUILDING, build_once, done_marker_complete, leftovers, lock_path

REPO = Path(__file__).resolve().parents[2]
WORKERS = 4
KEYS = 3
VOCAB = 11
STEP = 0.1  # bigram logits: logit(next=j | prev) = STEP * (prev * VOCAB + j)

# Each worker waits for the gate, then asks for KEYS reference caches (one example set each); the
# model loader appends one line per computation to the marker file and is slow enough (0.3 s) that
# all workers are cold at once.
REFERENCE_WORKER = f"""
import json, sys, time, types
from pathlib import Path
import torch
from prefexp.engine.reference import cached_reference_logps

cache, marker, gate, out = map(Path, sys.argv[1:5])

class Bigram(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding({VOCAB}, {VOCAB})
        with torch.no_grad():
            self.table.weight.copy_(torch.arange({VOCAB * VOCAB}, dtype=torch.float32).view({VOCAB}, {VOCAB}) * {STEP})
    def forward(self, input_ids, attention_mask=None, **kwargs):
        return types.SimpleNamespace(logits=self.table(input_ids))

def loader():
    with marker.open("a") as fh:
        fh.write("computed\\n")
    time.sleep(0.3)
    return Bigram()

while not gate.exists():
    time.sleep(0.01)
results = {{}}
for key in range({KEYS}):
    examples = [{{"index": i, "prompt_ids": [1, 2 + key], "chosen_ids": [3, 4 + i, 10], "rejected_ids": [5 + key, 10]}}
                for i in range(4)]
    values = cached_reference_logps(loader, "hub-model-id/for-the-test", examples, pad_token_id=0,
                                    batch_size=2, cache_dir=cache)
    results[key] = {{str(k): list(v) for k, v in sorted(values.items())}}
out.write_text(json.dumps(results))
"""

# A folder entry with a DONE marker (the reward-model and sandbox-model layout).
FOLDER_WORKER = """
import sys, time
from pathlib import Path
from prefexp.cachefs import build_once, done_marker_complete

final, marker, gate, out = map(Path, sys.argv[1:5])

def build(tmp):
    with marker.open("a") as fh:
        fh.write("built\\n")
    (tmp / "weights.bin").write_bytes(b"w" * 1000)
    time.sleep(0.3)
    (tmp / "DONE").write_text("{}")

while not gate.exists():
    time.sleep(0.01)
built = build_once(final, build, complete=done_marker_complete, directory=True, what="test model")
out.write_text(str(built))
"""


def run_workers(code: str, tmp_path: Path, target: Path) -> tuple[list[str], list[str]]:
    """Start WORKERS processes on the same target, open the gate, return (marker lines, outputs)."""
    marker, gate = tmp_path / "computations.log", tmp_path / "gate"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    outs = [tmp_path / f"out{i}.json" for i in range(WORKERS)]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), str(marker), str(gate), str(o)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for o in outs]
    gate.touch()
    logs = [p.communicate(timeout=240)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log  # 0 errors: no FileNotFoundError, no half-read JSON
    return marker.read_text().splitlines(), [o.read_text() for o in outs]


def bigram_logp(prev: int, nxt: int) -> float:
    """log softmax of the row STEP * (prev * VOCAB + j): the prev term cancels."""
    return STEP * nxt - math.log(sum(math.exp(STEP * k) for k in range(VOCAB)))


def expected_logps(key: int) -> dict[str, list[float]]:
    out = {}
    for i in range(4):
        prompt, chosen, rejected = [1, 2 + key], [3, 4 + i, 10], [5 + key, 10]
        seq_c, seq_r = prompt + chosen, prompt + rejected
        c = sum(bigram_logp(seq_c[t - 1], seq_c[t]) for t in range(len(prompt), len(seq_c)))
        r = sum(bigram_logp(seq_r[t - 1], seq_r[t]) for t in range(len(prompt), len(seq_r)))
        out[str(i)] = [c, r]
    return out


def test_four_cold_processes_compute_each_reference_cache_once(tmp_path):
    cache = tmp_path / "cache"
    computations, outputs = run_workers(REFERENCE_WORKER, tmp_path, cache)
    assert len(computations) == KEYS  # exactly one computation per key, not one per process
    results = [json.loads(o) for o in outputs]
    for key in range(KEYS):
        want = expected_logps(key)
        for got in results:  # every process, computing or waiting, returns the same values
            assert got[str(key)].keys() == want.keys()
            for i in want:  # float32 log-softmax over 11 logits of size <= 12: rounding ~1e-6 per token
                assert got[str(key)][i] == pytest.approx(want[i], abs=1e-5)
    files = sorted(p.name for p in (cache / "reference_logps").iterdir())
    assert len(files) == KEYS and all(name.endswith(".json") for name in files)  # no .tmp, no lock left


def test_four_cold_processes_build_a_folder_entry_once(tmp_path):
    final = tmp_path / "models" / "model-abc"
    built, outputs = run_workers(FOLDER_WORKER, tmp_path, final)
    assert len(built) == 1 and sorted(outputs) == ["False"] * (WORKERS - 1) + ["True"]
    assert (final / "DONE").is_file() and (final / "weights.bin").stat().st_size == 1000
    assert sorted(p.name for p in final.parent.iterdir()) == ["model-abc"]


KILLED_BUILDER = """
import sys, time
from pathlib import Path
from prefexp.cachefs import build_once, done_marker_complete

final, started = Path(sys.argv[1]), Path(sys.argv[2])

def build(tmp):
    (tmp / "half-written.bin").write_bytes(b"x" * 100)
    started.touch()
    time.sleep(600)  # killed here, mid-build

build_once(final, build, complete=done_marker_complete, directory=True)
"""


def test_a_killed_build_is_cleaned_and_rebuilt_by_the_next_run(tmp_path):
    final, started = tmp_path / "models" / "model-abc", tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILDER, str(final), str(started)],
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the builder did not start"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (stale,) = leftovers(final)  # the killed build's folder, named after its host and pid
    assert stale.name.startswith(f".{final.name}{BUILDING}") and f"-{proc.pid}-" in stale.name
    assert lock_path(final).exists()  # kill -9 could not remove it; its flock died with the process
    final.mkdir()  # and an incomplete final entry (no DONE), as an older, non-atomic build left them

    calls = []
    assert build_once(final, lambda tmp: calls.append((tmp / "DONE").write_text("{}")),
                      complete=done_marker_complete, directory=True)
    assert len(calls) == 1 and done_marker_complete(final)
    assert sorted(p.name for p in final.parent.iterdir()) == ["model-abc"]  # leftovers and lock gone
    assert sorted(p.name for p in final.iterdir()) == ["DONE"]  # the incomplete entry was replaced


def test_a_failing_build_leaves_nothing_and_the_next_call_builds(tmp_path):
    final = tmp_path / "scores.json"

    def fail(tmp):
        tmp.write_text("partial")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        build_once(final, fail)
    assert list(tmp_path.iterdir()) == []
    assert build_once(final, lambda tmp: tmp.write_text("[1]")) is True
    assert build_once(final, lambda tmp: pytest.fail("a complete entry is never rebuilt")) is False
    assert final.read_text() == "[1]"
