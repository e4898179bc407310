"""`python -m prefexp.report` on a synthetic sweep dir: table values, eval columns, plots."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

from prefexp.report import main as report_main
from prefexp.reporting.collect import collect_runs

from .conftest import run

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(sweep: Path, num: int, loss: str, tau: float, margins: list[float], results: dict | None = None,
             failed: bool = False) -> Path:
    d = sweep / f"{num}_loss={loss},tau={tau}"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"loss={loss}", f"tau={tau}", "seed=0"]))
    (d / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num},
                                                                        "runtime": {"choices": {"loss": loss}}}}))
    rows = [{"step": 5 * (i + 1), "loss": 0.7 - 0.1 * i, "rewards/margins": m, "logps/chosen": -100.0 - i,
             "logps/rejected": -110.0 - 2 * i} for i, m in enumerate(margins)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if failed:
        (d / "FAILED").write_text("RuntimeError: out of memory\n\nTraceback ...\n")
    else:
        (d / "checkpoint").mkdir()
        (d / "checkpoint" / "manifest.json").write_text("{}")
    if results is not None:
        (d / "eval" / results["benchmark"]).mkdir(parents=True)
        (d / "eval" / results["benchmark"] / "results.json").write_text(json.dumps(results))
    return d


@pytest.fixture
def sweep(tmp_path) -> Path:
    s = tmp_path / "2026-01-01" / "10-00-00"
    fake_run(s, 0, "mixdpo", 0.25, [0.1, 0.4], {"benchmark": "sandbox", "mean_gold_score": 6.1, "win_rate": 55.0})
    # the evaluation stage's real layout: numbers under "metrics", nested dicts flattened
    fake_run(s, 1, "mixdpo", 1.0, [0.2, 0.5], {"benchmark": "sandbox", "schema_version": 1,
                                                "metrics": {"mean_gold_score": 6.4, "win_rate": 58.5}})
    fake_run(s, 2, "dpo", 0.25, [0.3, 0.9], {"benchmark": "sandbox", "mean_gold_score": 5.9, "win_rate": 48.0})
    fake_run(s, 3, "dpo", 1.0, [0.3], failed=True)
    return s


def test_collect_reads_status_metrics_and_eval(sweep):
    runs = collect_runs(sweep)
    assert [r.job_num for r in runs] == [0, 1, 2, 3]
    assert [r.status for r in runs] == ["ok", "ok", "ok", "failed"]
    assert runs[3].error == "RuntimeError: out of memory"
    assert runs[1].final == {"step": 10, "loss": 0.6, "rewards/margins": 0.5, "logps/chosen": -101.0,
                             "logps/rejected": -112.0}
    assert runs[1].eval == {"sandbox/mean_gold_score": 6.4, "sandbox/win_rate": 58.5}
    assert runs[0].headline == {"sandbox": "sandbox/win_rate"}
    assert (runs[2].loss, runs[2].tau) == ("dpo", 0.25)


def test_report_table_and_plots(sweep, capsys):
    assert report_main([str(sweep)]) == 0
    with (sweep / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["loss"] for r in rows] == ["mixdpo", "mixdpo", "dpo", "dpo"]
    assert [float(r["tau"]) for r in rows] == [0.25, 1.0, 0.25, 1.0]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert [r["final/rewards/margins"] for r in rows] == ["0.4", "0.5", "0.9", "0.3"]
    assert [r["eval/sandbox/win_rate"] for r in rows] == ["55.0", "58.5", "48.0", ""]
    assert [r["eval/sandbox/mean_gold_score"] for r in rows] == ["6.1", "6.4", "5.9", ""]
    assert "seed" not in rows[0], "a parameter that never varies is not a column"
    md = (sweep / "report.md").read_text()
    assert "| 1 | ok | mixdpo | 1 | 10 | 0.6 | 0.5 |" in md
    assert "4 runs: 3 ok, 1 failed" in md and "RuntimeError: out of memory" in md
    for name in ("eval_vs_tau.png", "curves.png"):
        assert (sweep / name).read_bytes()[:8] == PNG
    assert not (sweep / "margins_vs_tau.png").exists()
    assert "report.md" in capsys.readouterr().out


def test_report_without_eval_plots_margins(tmp_path):
    s = tmp_path / "s"
    fake_run(s, 0, "mixdpo", 0.5, [0.1])
    fake_run(s, 1, "mixdpo", 1.5, [0.2])
    run([sys.executable, "-m", "prefexp.report", str(s)], timeout=120)
    assert (s / "margins_vs_tau.png").read_bytes()[:8] == PNG
    assert "eval/" not in (s / "report.csv").read_text()


def test_report_on_an_empty_dir_fails_clearly(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no run dirs" in capsys.readouterr().err
