"""results.json helpers, the summary line, and W&B: the numbers join the training run offline."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import prefexp.evaluation
from prefexp.evaluation import results


def test_every_module_imports():
    names = [m.name for m in pkgutil.iter_modules(prefexp.evaluation.__path__, "prefexp.evaluation.")]
    assert len(names) >= 14, names
    for name in names + ["prefexp.evaluate"]:
        importlib.import_module(name)


def test_flat_metrics_keeps_finite_numbers_only():
    m = {"score": 6.5, "turn_2": None, "n": 3, "per_category": {"math": 4.0, "coding": float("nan")},
         "note": "text", "flag": True}
    assert results.flat_metrics("mt_bench", m) == {
        "eval/mt_bench/score": 6.5, "eval/mt_bench/n": 3, "eval/mt_bench/per_category/math": 4.0}


def test_summary_line():
    res = {"benchmark": "alpaca_eval", "model_name": "run-step7", "n_items": 4,
           "metrics": {"win_rate": 12.5, "length_controlled_winrate": None, "standard_error": 1.25},
           "judge": {"model": "gpt-4-1106-preview"}}
    assert results.summary_line(res) == ("alpaca_eval run-step7: win_rate=12.500 length_controlled_winrate=n/a "
                                         "standard_error=1.250 (n=4, judge gpt-4-1106-preview)")


def test_no_wandb_run_is_a_note_not_an_error(tmp_path):
    assert results.log_to_wandb(tmp_path, "sandbox", {"win_rate": 50.0}).startswith("skipped: no W&B run")
    assert results.log_to_wandb(None, "sandbox", {"win_rate": 50.0}).startswith("skipped")


def test_metrics_join_the_training_runs_offline_wandb(tmp_path, monkeypatch):
    """Training's offline run (created here as train.py does, dir=<run dir>) is resumed by id;
    the summary update lands in a new offline segment of the same run (synced together)."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="prefexp-test", dir=str(tmp_path), mode="offline")
    run_id = run.id
    run.log({"train/loss": 0.5})
    run.finish()
    assert results.find_wandb_run(tmp_path)[0] == run_id

    note = results.log_to_wandb(tmp_path, "mt_bench", {"score": 6.25, "per_category": {"math": 3.0}})
    assert note.startswith(f"added to W&B run {run_id}")
    segments = sorted((tmp_path / "wandb").glob(f"offline-run-*-{run_id}*/run-{run_id}.wandb"))
    assert len(segments) == 2
    data = b"".join(p.read_bytes() for p in segments)
    assert b"eval/mt_bench/score" in data and b"eval/mt_bench/per_category/math" in data
