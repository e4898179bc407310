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
    assert results.log_to_wandb(tmp_path, "sandbox", {"metrics": {"win_rate": 50.0}}).startswith("skipped: no W&B run")
    assert results.log_to_wandb(None, "sandbox", {"metrics": {"win_rate": 50.0}}).startswith("skipped")


def test_metrics_join_the_training_runs_offline_wandb(tmp_path, monkeypatch):
    """Training's run (started by prefexp.tracking.run.start_wandb, which records its identity in the
    run dir) is reopened by project + id, keeping its name, group and tags; the eval keys land in
    that run's summary and in one history row at the last training step, after its last _step,
    with the generations Table; all read back from the offline run files."""
    pytest.importorskip("wandb")
    import wandb

    from prefexp.config.schema import LoggerConfig
    from prefexp.tracking.run import start_wandb
    from prefexp.tracking.files import history_rows, run_identity, summary

    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = LoggerConfig(project="prefexp-evaltest", mode="offline", group="g1")
    run = start_wandb(cfg, {"loss": {"name": "dpo"}}, tmp_path, "train-run", ["loss:dpo"])
    run_id = run.id
    run.log({"train/loss": 0.5, "train/global_step": 10}, step=10)
    run.finish()
    wandb.teardown()
    assert json.loads((tmp_path / "wandb_run.json").read_text())["id"] == run_id

    out_dir = tmp_path / "eval" / "sandbox"
    out_dir.mkdir(parents=True)
    (out_dir / "model_outputs.json").write_text(json.dumps([{"prompt": "p1", "output": "a1"},
                                                            {"prompt": "p2", "output": "a2"}]))
    res = {"metrics": {"win_rate": 50.0, "per_task": {"copy": 25.0}},
           "per_prompt": {"win_rate": {"p1": 100.0, "p2": 0.0}}, "files": {"model_outputs": "model_outputs.json"}}
    note = results.log_to_wandb(tmp_path, "sandbox", res, out_dir)
    assert note.startswith(f"added to W&B run {run_id} (prefexp-evaltest;")
    segments = sorted((tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(segments) == 2
    assert [run_identity(p) for p in segments] == [{"id": run_id, "project": "prefexp-evaltest", "entity": "",
                                                    "name": "train-run", "group": "g1", "tags": ["loss:dpo"]}] * 2
    merged = summary(segments)
    assert merged["eval/sandbox/win_rate"] == 50.0 and merged["eval/sandbox/per_task/copy"] == 25.0
    (row,) = history_rows(segments[1])
    assert row["_step"] == 11 and row["train/global_step"] == 10 and row["eval/sandbox/win_rate"] == 50.0
    table = "eval/sandbox/generations/"  # a Table is a reference to its file in the run's media
    assert row[table + "_type"] == "table-file" and (row[table + "ncols"], row[table + "nrows"]) == (3, 2)
    assert json.loads((segments[1].parent / "files" / row[table + "path"]).read_text()) == {
        "columns": ["prompt", "generation", "win_rate"], "data": [["p1", "a1", 100.0], ["p2", "a2", 0.0]]}
