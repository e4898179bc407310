"""With ``trainer.max_steps`` inside the first pass over the plan, only the pairs the run reaches
get a reference pass (pipeline/trained_pairs.py); a resume with more steps extends it and trains
the next pairs of the plan, as an uninterrupted run does."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.helpers import read_jsonl, run_train

# the small sandbox of test_end_to_end (its cached build); learning rate 0 keeps policy = reference,
# so a DPO step's loss is ln 2 exactly when each pair got its own reference log-probs
SMALL = ["dataset.sandbox.num_prompts=400", "model.sandbox.sft_steps=80", "model.sandbox.num_prompts=400",
         "loss=dpo", "logger=none", "trainer.logging_steps=1", "trainer.per_device_batch_size=4",
         "trainer.learning_rate=0", "trainer.probes.enabled=false"]


def _reference_entries(cache: Path) -> list[int]:
    """Pairs per reference cache entry, smallest first."""
    return sorted(len(json.loads(p.read_text())["data"]) for p in (cache / "reference_logps").glob("*.json"))


def test_a_capped_run_scores_only_the_pairs_it_trains_and_a_resume_extends_them(tmp_path):
    cache = tmp_path / "cache"
    common = [*SMALL, f"paths.cache_dir={cache}"]
    full = tmp_path / "full"
    run_train(full, *common, "trainer.max_steps=4")
    assert _reference_entries(cache) == [16]  # 4 steps x 4 pairs, not the 398 pairs of the data
    run = tmp_path / "run"
    run_train(run, *common, "trainer.max_steps=2", "trainer.save_steps=2")
    assert _reference_entries(cache) == [8, 16]
    proc = run_train(run, *common, "trainer.max_steps=4", "trainer.save_steps=2")  # more steps: resumes
    assert "resuming from" in proc.stdout + proc.stderr
    rows, want = read_jsonl(run / "metrics.jsonl"), read_jsonl(full / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for got, ref in zip(rows, want):
        assert got["loss"] == pytest.approx(math.log(2), abs=1e-6)  # each pair with its own reference
        assert got["logps/chosen"] == pytest.approx(ref["logps/chosen"], rel=1e-6)  # the same pairs, in order
