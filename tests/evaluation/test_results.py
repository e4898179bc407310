"""results.json helpers, the summary line, and W&B: the numbers join the training run offline."""
from __future__ import annotations

import importlib
import json
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
    assert results.summary_line(res) == ("alpaca_eval run-step7: win_rate=12.50 length_controlled_winrate=n/a "
                                         "standard_error=1.25 (n=4, judge gpt-4-1106-preview)")


def test_summary_line_says_subset_and_failures():
    res = {"benchmark": "mt_bench", "model_name": "m", "n_items": 8, "subset": {"n": 8, "of": 80},
           "metrics": {"score": 6.125, "turn_1": 6.5, "turn_2": 5.75, "n_unparseable": 0, "n_failed": 2},
           "judge": {"model": "gpt-4"}}
    assert results.summary_line(res) == (
        "mt_bench m: score=6.125000 turn_1=6.500000 turn_2=5.750000 n_unparseable=0 (n=8 of 80: subset, "
        "not comparable to full-set numbers; 2 judgment(s) failed, left out, judge gpt-4)")


def test_no_wandb_run_is_a_note_not_an_error(tmp_path):
    assert results.log_to_wandb(tmp_path, "sandbox", {"win_rate": 50.0}).startswith("skipped: no W&B run")
    assert results.log_to_wandb(None, "sandbox", {"win_rate": 50.0}).startswith("skipped")


def test_metrics_join_the_training_runs_offline_wandb(tmp_path, monkeypatch):
    """Training's run (started by prefexp.logger.start_wandb, which records its identity in the
    run dir) is reopened by project + id; the eval keys land in that run's summary, read back from
    the offline run files."""
    pytest.importorskip("wandb")
    import wandb

    from prefexp.config.schema import LoggerConfig
    from prefexp.logger import start_wandb
    from tests.evaluation.wandb_records import run_identity, summary

    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = LoggerConfig(project="prefexp-evaltest", mode="offline")
    run = start_wandb(cfg, {"loss": {"name": "dpo"}}, tmp_path, "train-run", [])
    run_id = run.id
    run.log({"train/loss": 0.5})
    run.finish()
    wandb.teardown()
    assert json.loads((tmp_path / "wandb_run.json").read_text())["id"] == run_id

    note = results.log_to_wandb(tmp_path, "mt_bench", {"score": 6.25, "per_category": {"math": 3.0}})
    assert note.startswith(f"added to W&B run {run_id} (prefexp-evaltest;")
    segments = sorted((tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(segments) == 2
    assert [run_identity(p) for p in segments] == [{"id": run_id, "project": "prefexp-evaltest", "entity": ""}] * 2
    merged = summary(segments)
    assert merged["eval/mt_bench/score"] == 6.25 and merged["eval/mt_bench/per_category/math"] == 3.0
