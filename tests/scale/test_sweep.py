"""Sweeps on the tiny model: a 2 x 2 multirun with its summary, report and W&B offline naming, a
failing point that does not stop the sweep, and (slow) an Optuna study and a failing multi-rank job."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from .conftest import read_jsonl, run, train_cmd

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # ~100 s: four trainings; the default suite keeps the one-job evaluated multirun below
def test_two_by_two_multirun_writes_four_runs_and_a_report(tiny, tmp_path):
    """The issue's 2 x 2 sweep (smaller batch; W&B offline instead of none, to check its naming)."""
    sweep = tmp_path / "tau_sweep"
    overrides = [o for o in tiny if o != "logger=none"] + ["logger=wandb", "logger.job_type=sweep_point",
                                                          "logger.tags=[smoke]"]
    run(train_cmd("-m", "tau=0.25,1.0", "curriculum=easy_to_hard,none", *overrides, "trainer.per_device_batch_size=4",
                  "trainer.logging_steps=1", f"hydra.sweep.dir={sweep}"))
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert (summary["jobs"], summary["ok"], summary["failed"]) == (4, 4, 0)
    points = set()
    for job in summary["runs"]:
        run_dir = sweep / job["dir"]
        assert (run_dir / "checkpoint" / "manifest.json").exists()
        params = dict(o.split("=", 1) for o in job["overrides"])
        points.add((params["tau"], params["curriculum"]))
        last = read_jsonl(run_dir / "metrics.jsonl")[-1]
        assert job["final_metrics"]["loss"] == last["loss"] and job["final_metrics"]["step"] == 2
    assert points == {("0.25", "easy_to_hard"), ("0.25", "none"), ("1.0", "easy_to_hard"), ("1.0", "none")}

    with (sweep / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert {(r["tau"], r["curriculum"]) for r in rows} == points
    by_job = {str(j["job_num"]): j for j in summary["runs"]}
    for r in rows:
        assert float(r["final/loss"]) == pytest.approx(by_job[r["job"]]["final_metrics"]["loss"])
    md = (sweep / "report.md").read_text()
    runs_table = [line for line in md.split("## Runs")[1].splitlines() if line.startswith("| ")]
    assert len(runs_table) == 1 + 4  # header + four runs
    arms_table = [line for line in md.split("## Runs")[0].splitlines() if line.startswith("| ")]
    assert len(arms_table) == 1 + 4  # one seed per point: four arms of n=1
    for name in ("margins_vs_tau.png", "curves.png"):  # no eval results yet: margins against tau
        assert (sweep / name).read_bytes()[:8] == PNG

    # job dirs: short, glob-safe names; the overrides stay in .hydra/overrides.yaml
    assert [j["dir"] for j in summary["runs"]] == [
        "0_hf-ultrafeedback-mixdpo-tau0.25-easy_to_hard-s0", "1_hf-ultrafeedback-mixdpo-tau0.25-nocurriculum-s0",
        "2_hf-ultrafeedback-mixdpo-tau1.0-easy_to_hard-s0", "3_hf-ultrafeedback-mixdpo-tau1.0-nocurriculum-s0"]
    # W&B offline, one run per job: group = the sweep (unique), job type, the short name, tags of what it uses
    from prefexp.tracking.files import config, run_identity

    for job, curriculum_tags in zip(summary["runs"][:2], (["curriculum:easy_to_hard"], [])):
        (offline,) = (sweep / job["dir"] / "wandb").glob("offline-run-*/run-*.wandb")
        ident = run_identity(offline)
        assert ident["group"].startswith("tau_sweep-") and ident["name"] == job["dir"].split("_", 1)[1]
        assert sorted(ident["tags"]) == sorted(["smoke", "loss:mixdpo", "seed:0", "router:threshold", "tau:0.25",
                                                *curriculum_tags])
        assert b"sweep_point" in offline.read_bytes()  # the job type
        saved = config(offline)
        assert saved["loss"]["name"] == "mixdpo" and saved["tau"] == 0.25 and "trainer_args" in saved
        assert ("curriculum" in saved) == bool(curriculum_tags)


def test_a_failed_point_is_reported_and_the_sweep_goes_on(tiny, tmp_path):
    """Job 0 (tau=99) fails validation; job 1 still runs (a dry run: the plan only, no model)."""
    sweep = tmp_path / "sweep"
    run(train_cmd("-m", "tau=99,0.25", "dry_run=true", *tiny, f"hydra.sweep.dir={sweep}"))
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert (summary["jobs"], summary["ok"], summary["failed"]) == (2, 1, 1)
    failed, ok = summary["runs"]
    assert failed["status"] == "failed" and failed["error"].startswith("ConfigError: invalid config: tau=99.0 is outside")
    assert "Traceback" in (sweep / failed["dir"] / "FAILED").read_text()
    assert ok["status"] == "ok" and (sweep / ok["dir"] / "routing_plan.jsonl").exists()
    report = (sweep / "report.md").read_text()
    assert "1 ok, 1 failed" in report and "## Failed runs" in report


@pytest.mark.slow
def test_optuna_sweeper_over_beta_and_lr(tiny, tmp_path):
    sweep = tmp_path / "optuna"
    run(train_cmd("-m", "hydra/sweeper=optuna_beta_lr", "hydra.sweeper.n_trials=2", *tiny, "trainer.max_steps=1",
                  "trainer.per_device_batch_size=2", f"hydra.sweep.dir={sweep}"))
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in best and "loss.beta" in best and "trainer.learning_rate" in best
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["jobs"] == 2 and summary["ok"] == 2
    for job in summary["runs"]:
        assert any(o.startswith("loss.beta=") for o in job["overrides"])
        assert not math.isnan(job["final_metrics"]["rewards/accuracies"])


@pytest.mark.slow
def test_a_failing_multi_rank_job_quotes_its_ranks(tmp_path):
    """A sweep point whose ranks fail (a model folder transformers cannot load; a missing one is refused by
    validation before any rank starts): FAILED names the exit code and quotes rank stderr."""
    from .conftest import TINY_DATA

    sweep = tmp_path / "sweep"
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    run(train_cmd("-m", "trainer.devices=2", "model=hf", f"model.name_or_path={broken}", "dataset=ultrafeedback",
                  f"dataset.path={TINY_DATA}", "dataset.on_invalid=skip", "dataset.max_rows=16", "logger=none",
                  f"hydra.sweep.dir={sweep}"))
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["failed"] == 1 and summary["runs"][0]["error"].startswith("RuntimeError: 2 rank(s) exited with code 1")
    failed = (sweep / summary["runs"][0]["dir"] / "FAILED").read_text()
    assert "attempt_0/0/stderr.log" in failed and "attempt_0/1/stderr.log" in failed and "broken-model" in failed


def _evaluated_multirun(tiny: list[str], sweep: Path, *sweep_args: str) -> dict:
    """A multirun whose jobs hand their checkpoints to eval=sandbox (2 prompts), in a sweep dir
    whose path holds a space and a quote."""
    from prefexp.launch.override_quoting import override

    run(train_cmd("-m", *sweep_args, "evaluate=[sandbox]", "evaluate_overrides=['eval.limit=2']", *tiny,
                  override("hydra.sweep.dir", str(sweep))))
    return json.loads((sweep / "sweep_summary.json").read_text())


def test_every_job_of_a_multirun_is_evaluated_from_a_quoted_dir(tiny, tmp_path):
    """One job (seconds, not minutes): its dir '<sweep dir with a space and a quote>/0_hf-ultrafeedback-dpo-s0'
    reaches prefexp.evaluate intact."""
    sweep = tmp_path / "hand off" / "it's a sweep"
    summary = _evaluated_multirun([o if o != "trainer.max_steps=2" else "trainer.max_steps=1" for o in tiny],
                                  sweep, "loss=dpo")
    assert (summary["jobs"], summary["ok"], summary["failed"]) == (1, 1, 0)
    job = summary["runs"][0]
    assert job["dir"] == "0_hf-ultrafeedback-dpo-s0"  # the groups it chose, loss, seed; glob-safe
    results = json.loads((sweep / job["dir"] / "eval" / "sandbox" / "results.json").read_text())
    assert results["n_items"] == 2 and results["metrics"]["n_total"] == 2
    assert job["eval"]["sandbox/n_total"] == 2.0


@pytest.mark.slow
def test_the_issue_sweep_evaluates_all_four_jobs_and_reports_two_seeds_per_loss(tiny, tmp_path):
    """`-m loss=dpo,sft seed=0,1 evaluate=[sandbox]` (issue 16's "done when"): 4 evaluated jobs,
    then `python -m prefexp.report` prints one row per loss with n=2 and draws error bars."""
    import sys

    sweep = tmp_path / "hand off" / "it's a sweep"
    summary = _evaluated_multirun(tiny, sweep, "loss=dpo,sft", "seed=0,1")
    assert (summary["jobs"], summary["ok"], summary["failed"]) == (4, 4, 0)
    assert all(job["eval"]["sandbox/n_total"] == 2.0 for job in summary["runs"])
    out = run([sys.executable, "-m", "prefexp.report", str(sweep)], timeout=300).stdout
    arm_rows = [line for line in out.splitlines() if line.startswith("| loss=")]
    assert [row.split(" | ")[:3] for row in arm_rows] == [["| loss=dpo", "2", "0"], ["| loss=sft", "2", "0"]]
    assert (sweep / "arms.png").read_bytes()[:8] == PNG


@pytest.mark.slow
def test_a_failed_evaluation_makes_a_failed_job(tiny, tmp_path):
    """The hand-off's evaluation fails (an unknown eval key): the job is 'failed' in the summary,
    with the evaluation's exit code and a re-run command, though its training finished. (The same
    rule without training, in seconds: tests/reporting/test_report.py, tests/evaluation/test_handoff.py.)"""
    sweep = tmp_path / "sweep"
    overrides = [o if o != "trainer.max_steps=2" else "trainer.max_steps=1" for o in tiny]
    run(train_cmd("-m", "loss=dpo", "evaluate=[sandbox]", "evaluate_overrides=['eval.no_such_key=1']", *overrides,
                  f"hydra.sweep.dir={sweep}"))
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert (summary["jobs"], summary["ok"], summary["failed"]) == (1, 0, 1)
    job = summary["runs"][0]
    assert job["error"].startswith("EvaluationFailed: eval=sandbox exited with code ")
    assert "re-run: cd " in job["error"] and (sweep / job["dir"] / "checkpoint" / "manifest.json").exists()
