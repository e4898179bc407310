"""`python -m prefexp.report` on a synthetic sweep dir: table values, eval columns, plots."""
from __future__ import annotations

import csv
import math
import json
import sys
from pathlib import Path

import pytest
import yaml

from prefexp.report import main as report_main
from prefexp.reporting.collect import collect_runs

from .conftest import run

PNG = b"\x89PNG\r\n\x1a\n"


def _first_table(md: str) -> list[str]:
    """The lines of report.md's first markdown table."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


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
    # final = the last 10 % of logged steps (step > 9 of 10: the step-10 row alone)
    assert runs[1].final == {"step": 10, "final_rows": 1, "loss": 0.6, "rewards/margins": 0.5, "logps/chosen": -101.0,
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
    assert "| 1 | 1_loss=mixdpo,tau=1.0 | ok | 0 | 10 | 58.5 |" in md  # the runs at a glance; all columns in the CSV
    assert "[report.csv](report.csv)" in md
    first = _first_table(md)
    assert first[0].startswith("| arm | n | failed | eval/sandbox/win_rate |")
    # the leaderboard: best win rate first, the failed-only arm last
    assert [row.split(" | ")[0] for row in first[2:]] == ["| loss=mixdpo,tau=1.0", "| loss=mixdpo,tau=0.25",
                                                          "| loss=dpo,tau=0.25", "| loss=dpo,tau=1.0"]
    assert "| loss=mixdpo,tau=1.0 | 1 | 0 | 58.5 (n=1) |" in md  # arms: one seed each here
    assert "4 runs: 3 ok, 1 failed" in md and "RuntimeError: out of memory" in md
    for name in ("eval_vs_tau.png", "curves.png", "arms.png"):
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


# ------------------------------------------------------------------ arms: seeds pooled, known values

def arm_run(sweep: Path, num: int, loss: str, seed: int, win_rate: float, tau: float | None = None,
            probes: list[dict] | None = None, per_prompt: dict | None = None) -> Path:
    """A finished run dir with the real config keys the report reads (loss target, router, seed)."""
    name = f"{num}_loss={loss},seed={seed}" + ("" if tau is None else f",tau={tau}")
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    overrides = [f"loss={loss}", f"seed={seed}"] + ([] if tau is None else [f"tau={tau}"])
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    target = {"dpo": "prefexp.losses.dpo.DPOLoss", "sft": "prefexp.losses.sft.SFTLoss",
              "mixdpo": "prefexp.losses.mixdpo.MixDPOLoss"}[loss]
    config = {"loss": {"_target_": target}, "seed": seed, "tau": 0.5 if tau is None else tau,
              "router": {"name": "threshold", "on_selected": "route", "on_rest": "preference"}}
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"step": 1, "loss": 0.6931}, {"step": 5, "loss": 0.6}, {"step": 10, "loss": 0.5}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "checkpoint").mkdir()
    (d / "checkpoint" / "manifest.json").write_text("{}")
    (d / "eval" / "sandbox").mkdir(parents=True)
    (d / "eval" / "sandbox" / "results.json").write_text(json.dumps(
        {"benchmark": "sandbox", "metrics": {"win_rate": win_rate, "mean_gold_score": win_rate / 10},
         **({"per_prompt": per_prompt} if per_prompt is not None else {})}))
    if probes is not None:
        (d / "probes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in probes))
    return d


@pytest.fixture
def seeded(tmp_path) -> Path:
    """loss=dpo,sft x seed=0,1,2; win rates dpo 50/52/54, sft 55/56/60."""
    s = tmp_path / "seeded"
    for num, (loss, seed, win) in enumerate([("dpo", 0, 50.0), ("dpo", 1, 52.0), ("dpo", 2, 54.0),
                                             ("sft", 0, 55.0), ("sft", 1, 56.0), ("sft", 2, 60.0)]):
        arm_run(s, num, loss, seed, win)
    return s


def test_arms_pool_seeds_with_t_based_ci(seeded):
    """dpo: mean 52, sd 2, half-width t(0.975, 2) * 2 / sqrt(3) = 4.302653 * 1.154701 = 4.968275;
    sft: mean 57, sd sqrt(7) = 2.645751, half-width 4.302653 * 2.645751 / sqrt(3) = 6.572411."""
    from prefexp.reporting.arms import group_arms

    arms = group_arms(collect_runs(seeded))
    assert [a.label for a in arms] == ["loss=dpo", "loss=sft"]
    dpo, sft = (a.estimate("eval/sandbox/win_rate") for a in arms)
    assert (dpo.n, sft.n) == (3, 3)
    assert dpo.mean == pytest.approx(52.0, abs=1e-12) and dpo.half_width == pytest.approx(4.968275, abs=2e-6)
    assert sft.mean == pytest.approx(57.0, abs=1e-12) and sft.half_width == pytest.approx(6.572411, abs=2e-6)
    # final/loss: rows at steps 1, 5, 10 -> the window (step > 9) is the step-10 row in every seed
    assert arms[0].estimate("final/loss").mean == pytest.approx(0.5)


def test_paired_differences_against_a_baseline(seeded, capsys):
    """sft - dpo per seed: 5, 4, 6 -> mean 5, sd 1, half-width 4.302653 / sqrt(3) = 2.484138:
    CI [2.515862, 7.484138] excludes 0 -> beyond noise."""
    assert report_main([str(seeded), "--baseline", "loss=dpo"]) == 0
    md = (seeded / "report.md").read_text()
    assert "## Paired differences against loss=dpo on eval/sandbox/win_rate" in md
    assert "| loss=sft | 5 | [2.516, 7.484] | 3 | seed | yes |" in md
    assert "| loss=dpo | 3 | 0 | 52 ± 5 | 5.2 ± 0.5 | 0.5 ± 0 (identical) |" in md
    assert "Seeds gave identical results" not in md  # the seeds differ in the evaluation
    with (seeded / "report_arms.csv").open() as f:
        rows = {(r["arm"], r["metric"]): r for r in csv.DictReader(f)}
    row = rows[("loss=sft", "eval/sandbox/win_rate")]
    assert float(row["mean"]) == pytest.approx(57.0)
    assert float(row["ci95_high"]) - 57.0 == pytest.approx(6.572411, abs=2e-6) and row["n"] == "3"
    assert (seeded / "arms.png").read_bytes()[:8] == PNG
    assert not (seeded / "eval_vs_tau.png").exists(), "the sweep does not set tau: no tau axis"
    assert report_main([str(seeded), "--baseline", "loss=kto"]) == 2
    assert "matches 0 arms" in capsys.readouterr().err


def test_an_arm_whose_seeds_agree_exactly_is_named_not_reported_as_certain(tmp_path):
    """mixdpo's three seeds give the same 53.0 (a deterministic run the seed does not reach): its
    ± 0 is marked and the arm is named under the table; dpo's seeds differ and it is not named."""
    s = tmp_path / "same"
    for num, (loss, seed, win) in enumerate([("dpo", 0, 50.0), ("dpo", 1, 52.0), ("mixdpo", 0, 53.0),
                                             ("mixdpo", 1, 53.0), ("mixdpo", 2, 53.0)]):
        arm_run(s, num, loss, seed, win)
    assert report_main([str(s)]) == 0
    md = (s / "report.md").read_text()
    assert "| loss=mixdpo | 3 | 0 | 53 ± 0 (identical) | 5.3 ± 0 (identical) |" in md
    notes = [line for line in md.splitlines() if line.startswith("Seeds gave identical results")]
    assert len(notes) == 1 and notes[0].startswith("Seeds gave identical results in loss=mixdpo:")


def test_per_prompt_scores_pair_on_seed_and_prompt_beside_the_seed_pairs(tmp_path, capsys):
    """Two seeds x 3 prompts. Gold per prompt: dpo seed 0 (5, 6, 7), seed 1 (6, 6, 6); sft seed 0
    (6, 7, 8), seed 1 (6, 8, 7). Per (seed, prompt) differences 1, 1, 1, 0, 2, 1: mean 1, sd
    sqrt(0.4) = 0.632456, half-width t(0.975, 5) = 2.570582 * 0.632456 / sqrt(6) = 0.663724.
    Per seed (the results' own means): dpo 6, 6; sft 7, 7 -> differences 1, 1: CI [1, 1]."""
    s = tmp_path / "prompts"
    golds = {("dpo", 0): (5, 6, 7), ("dpo", 1): (6, 6, 6), ("sft", 0): (6, 7, 8), ("sft", 1): (6, 8, 7)}
    for num, ((loss, seed), g) in enumerate(golds.items()):
        d = arm_run(s, num, loss, seed, 50.0, per_prompt={"mean_gold_score": {f"p{i}": v for i, v in enumerate(g)}})
        results = d / "eval" / "sandbox" / "results.json"
        data = json.loads(results.read_text())
        data["metrics"]["mean_gold_score"] = sum(g) / 3
        results.write_text(json.dumps(data))
    assert report_main([str(s), "--baseline", "loss=dpo", "--metric", "eval/sandbox/mean_gold_score",
                        "--metric", "eval/sandbox/win_rate"]) == 0
    md = (s / "report.md").read_text()
    assert "| loss=sft | 1 | [1, 1] | 2 | seed | yes |" in md
    assert "| loss=sft | 1 | [0.3363, 1.664] | 6 | seed x prompt | yes |" in md
    # win_rate: no per-prompt win terms recorded -> only the seed row (50 - 50 = 0 in both seeds)
    win = md.split("on eval/sandbox/win_rate")[1]
    assert "| loss=sft | 0 | [0, 0] | 2 | seed | no |" in win and "| seed x prompt |" not in win


def test_sandbox_per_prompt_terms_average_to_its_metrics():
    from prefexp.evaluation.sandbox_bench import compare_with_gold, gold_scores, per_prompt_scores

    def gold(prompt, answer):  # a stand-in scorer: the answer's length
        return float(len(answer))

    prompts, policy, reference = ["a", "b", "c", "d"], ["xx", "x", "xxx", "x"], ["x", "x", "xxxx", "xx"]
    terms = per_prompt_scores(prompts, gold_scores(prompts, policy, gold), gold_scores(prompts, reference, gold))
    metrics = compare_with_gold(prompts, policy, reference, gold)
    assert terms["win_rate"] == {"a": 100.0, "b": 50.0, "c": 0.0, "d": 0.0}
    assert sum(terms["win_rate"].values()) / 4 == pytest.approx(metrics["win_rate"]) == 37.5
    assert sum(terms["mean_gold_score"].values()) / 4 == pytest.approx(metrics["mean_gold_score"]) == 1.75


def test_a_loss_that_ignores_tau_is_one_arm_and_a_flat_reference(tmp_path):
    """DPO (router threshold, on_selected=route: DPO does not route) at tau 0.5 and 1.0 is the same
    run twice: one arm, the seed counted once; MixDPO reads tau: one arm per tau."""
    from prefexp.reporting.arms import group_arms

    s = tmp_path / "tau"
    arm_run(s, 0, "dpo", 0, 50.0, tau=0.5)
    arm_run(s, 1, "dpo", 0, 50.0, tau=1.0)
    arm_run(s, 2, "mixdpo", 0, 53.0, tau=0.5)
    arm_run(s, 3, "mixdpo", 0, 57.0, tau=1.0)
    arms = group_arms(collect_runs(s))
    assert [a.label for a in arms] == ["loss=dpo (ignores tau)", "loss=mixdpo,tau=0.5",
                                       "loss=mixdpo,tau=1.0"]
    assert (len(arms[0].runs), arms[0].duplicates) == (1, 1)
    assert report_main([str(s)]) == 0
    assert (s / "eval_vs_tau.png").read_bytes()[:8] == PNG


def test_final_window_never_uses_the_row_before_the_first_update():
    """max_steps=3, logging_steps=5: the step-1 row (initial weights) is all there is -> no final;
    with a last-step log (step 3) it is the final; 100 steps logged every 5: steps 95 and 100."""
    from prefexp.reporting.final_window import final_metrics

    assert final_metrics([{"step": 1, "loss": 0.6931}]) == {}
    assert final_metrics([{"step": 1, "loss": 0.6931}, {"step": 3, "loss": 0.65}]) == \
        {"step": 3, "final_rows": 1, "loss": 0.65}
    rows = [{"step": 1, "loss": 9.0}] + [{"step": s, "loss": float(s)} for s in range(5, 101, 5)]
    assert final_metrics(rows) == {"step": 100, "final_rows": 2, "loss": 97.5}


def test_a_failed_evaluation_fails_the_job_until_a_newer_result(tmp_path):
    import os

    s = tmp_path / "s"
    d = arm_run(s, 0, "dpo", 0, 50.0)
    marker = d / "eval" / "sandbox" / "FAILED"
    marker.write_text("EvaluationFailed: eval=sandbox exited with code 2; re-run: cd /x && python ...\n\ntail\n")
    results = d / "eval" / "sandbox" / "results.json"
    os.utime(results, (1_000_000, 1_000_000))  # results from an earlier attempt
    run = collect_runs(s)[0]
    assert run.status == "failed" and run.error.startswith("EvaluationFailed: eval=sandbox exited with code 2")
    os.utime(results, (marker.stat().st_mtime + 10,) * 2)  # a re-run wrote new results
    assert collect_runs(s)[0].status == "ok"


def test_displacement_rows_are_changes_from_step_zero(tmp_path):
    from prefexp.reporting.displacement import displacement_rows, probe_sets_of

    probes = [{"step": 0, "learning_rate": None, "probe/difficult/chosen": -30.0, "probe/difficult/rejected": -32.0,
               "probe/difficult/margin": 2.0, "probe/difficult/n": 4, "probe/easy/chosen": -20.0},
              {"step": 5, "learning_rate": 1e-3, "probe/difficult/chosen": -33.5, "probe/difficult/rejected": -40.0,
               "probe/difficult/margin": 6.5, "probe/difficult/n": 4, "probe/easy/chosen": -19.0}]
    s = tmp_path / "p"
    d = arm_run(s, 0, "dpo", 0, 50.0, probes=probes)
    (d / "route_learning_rates.json").write_text(json.dumps(
        {"difficult": {"pair_updates": 4, "mean_lr": 2e-4, "mean_lr_fraction_of_peak": 0.2}}))
    run = collect_runs(s)[0]
    assert run.route_lr == {"difficult/pair_updates": 4.0, "difficult/mean_lr": 2e-4,
                            "difficult/mean_lr_fraction_of_peak": 0.2}
    assert probe_sets_of([run]) == ["difficult", "easy"]
    assert displacement_rows(run) == [
        {"step": 0, "difficult/chosen": 0.0, "difficult/rejected": 0.0, "difficult/margin": 0.0, "easy/chosen": 0.0},
        {"step": 5, "difficult/chosen": -3.5, "difficult/rejected": -8.0, "difficult/margin": 4.5, "easy/chosen": 1.0,
         "learning_rate": 1e-3}]
    assert report_main([str(s)]) == 0
    assert (s / "displacement.png").read_bytes()[:8] == PNG
    assert "lr/difficult/mean_lr_fraction_of_peak |" in (s / "report.md").read_text()


def test_t_quantiles():
    from prefexp.reporting.stats import mean_ci, t_quantile_975

    assert t_quantile_975(1) == 12.706205 and t_quantile_975(30) == 2.042272
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 29, 30, 31, 45, 120, 1000):
        assert t_quantile_975(df) == pytest.approx(float(scipy_stats.t.ppf(0.975, df)), abs=1e-5)
    one = mean_ci([3.0])
    assert one.n == 1 and one.mean == 3.0 and math.isnan(one.half_width) and not one.excludes_zero
    assert mean_ci([float("nan"), None, 1.0, 3.0]).n == 2


# ------------------------------------------------------------------ the report at a glance (issue 23)

def _rich_run(sweep: Path, num: int, loss: str, seed: int, ties: int) -> Path:
    """Three benchmarks, per-task results, ties, training curves and route learning rates: every
    metric the headline table could show, more than fits in 12 columns."""
    d = arm_run(sweep, num, loss, seed, 50.0 + seed)
    sandbox = {"win_rate": 50.0 + seed, "mean_gold_score": 5.0, "n_ties": ties, "n_total": 100,
               "by_task": {"copy": {"win_rate": 40.0 + seed, "n_ties": 1}, "reverse": {"win_rate": 60.0 + seed}}}
    (d / "eval" / "sandbox" / "results.json").write_text(json.dumps({"benchmark": "sandbox", "metrics": sandbox}))
    for bench, metrics in (("mt_bench", {"score": 6.0, "turn_1": 6.5}),
                           ("alpaca_eval", {"length_controlled_winrate": 30.0, "n_draws": 5, "n_total": 50})):
        (d / "eval" / bench).mkdir(parents=True)
        (d / "eval" / bench / "results.json").write_text(json.dumps({"benchmark": bench, "metrics": metrics}))
    rows = [{"step": 1, "loss": 0.69}, {"step": 10, "loss": 0.5, "rewards/margins": 1.0, "rewards/accuracies": 0.7,
                                        "logps/chosen": -50.0}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "route_learning_rates.json").write_text(json.dumps(
        {name: {"mean_lr_fraction_of_peak": 0.5} for name in ("difficult", "easy", "all")}))
    return d


def test_the_first_table_is_the_headline_within_12_columns_and_tasks_go_to_a_csv(tmp_path):
    """dpo seeds with 10 and 20 ties in 100: ties % 15 ± t(0.975, 1) * sd 7.071068 / sqrt(2) =
    12.706205 * 5 = 63.53; the per-task numbers are not in report.md but in report_tasks.csv."""
    s = tmp_path / "rich"
    for num, (loss, seed, ties) in enumerate([("dpo", 0, 10), ("dpo", 1, 20), ("sft", 0, 0), ("sft", 1, 0)]):
        _rich_run(s, num, loss, seed, ties)
    assert report_main([str(s)]) == 0
    md = (s / "report.md").read_text()
    first = _first_table(md)
    header = [c.strip() for c in first[0].strip("|").split("|")]
    assert len(header) == 12 and header[:3] == ["arm", "n", "failed"]
    assert header[3:8] == ["eval/alpaca_eval/length_controlled_winrate", "alpaca_eval ties %", "eval/mt_bench/score",
                           "eval/sandbox/win_rate", "sandbox ties %"]
    dpo = next(line for line in first if line.startswith("| loss=dpo |"))
    assert dpo.split(" | ")[7] == "15 ± 64"  # sandbox ties %: 10 % and 20 %
    assert dpo.split(" | ")[4] == "10 ± 0 (identical)"  # alpaca draws: 5 of 50 in both seeds
    assert "by_task" not in md and "<benchmark> ties % = judgments with neither answer better" in md
    with (s / "report_tasks.csv").open() as f:
        rows = {(r["arm"], r["benchmark"], r["task"], r["metric"]): r for r in csv.DictReader(f)}
    copy = rows[("loss=dpo", "sandbox", "copy", "win_rate")]
    assert float(copy["mean"]) == pytest.approx(40.5) and copy["n"] == "2"
    assert float(copy["ci95_high"]) - 40.5 == pytest.approx(12.706205 * 0.5, abs=1e-5)
    assert "[report_tasks.csv](report_tasks.csv)" in md
    assert not any("by_task" in k for k in next(csv.DictReader((s / "report.csv").open())))


def test_paired_differences_default_to_the_plain_dpo_arm(seeded, tmp_path):
    """No --baseline: DPO (threshold router, on_selected=route, which DPO ignores) is the plain
    baseline; the same differences as naming it (sft - dpo: 5, CI [2.516, 7.484])."""
    assert report_main([str(seeded)]) == 0
    md = (seeded / "report.md").read_text()
    assert "## Paired differences against loss=dpo on eval/sandbox/win_rate" in md
    assert "| loss=sft | 5 | [2.516, 7.484] | 3 | seed | yes |" in md
    assert "Baseline: loss=dpo (the plain DPO arm" in md
    no_dpo = tmp_path / "nodpo"
    for num, (loss, seed) in enumerate([("sft", 0), ("mixdpo", 0)]):
        arm_run(no_dpo, num, loss, seed, 50.0 + num)
    assert report_main([str(no_dpo)]) == 0
    assert "Paired differences" not in (no_dpo / "report.md").read_text()
    assert report_main([str(no_dpo), "--baseline", "loss=sft"]) == 0  # a named arm still works
    assert "## Paired differences against loss=sft" in (no_dpo / "report.md").read_text()


def test_several_sweep_dirs_make_one_leaderboard(tmp_path, capsys):
    """Two sweeps both in dirs named ``sweep``: one report in --out, arms from both, labelled by
    input; sft (57) above dpo (52); paired against dpo across the inputs."""
    a, b, out = tmp_path / "a" / "sweep", tmp_path / "b" / "sweep", tmp_path / "board"
    for num, (seed, win) in enumerate([(0, 50.0), (1, 52.0), (2, 54.0)]):
        arm_run(a, num, "dpo", seed, win)
    for num, (seed, win) in enumerate([(0, 55.0), (1, 56.0), (2, 60.0)]):
        arm_run(b, num, "sft", seed, win)
    assert report_main([str(a), str(b)]) == 2
    assert "--out" in capsys.readouterr().err
    assert report_main([str(a), str(b), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    first = _first_table(md)
    assert first[0].startswith("| arm | n | failed | from | eval/sandbox/win_rate |")
    assert first[2].startswith("| loss=sft | 3 | 0 | B | 57 ± 6.6 |") and first[3].startswith("| loss=dpo | 3 | 0 | A | 52 ± 5 |")
    assert f"- A: `{a.resolve()}`" in md and f"- B: `{b.resolve()}`" in md
    assert "| loss=sft | 5 | [2.516, 7.484] | 3 | seed | yes |" in md
    with (out / "report.csv").open() as f:
        assert [r["from"] for r in csv.DictReader(f)] == ["A", "A", "A", "B", "B", "B"]
    assert not (a / "report.md").exists() and (out / "arms.png").read_bytes()[:8] == PNG


def test_every_plot_has_labelled_axes_and_win_rates_a_50_percent_line(tmp_path):
    """The figures as the report builds them: every drawn axes has an x and a y label, each win
    rate axis a line at 50 %, and the learning-rate panel appears once however many probe sets."""
    from prefexp.reporting.arms import group_arms
    from prefexp.reporting.displacement import displacement_figure
    from prefexp.reporting.plots import against_tau_figure, arms_figure, curves_figure, pyplot

    probes = [{"step": 0, "learning_rate": None, "probe/difficult/chosen": -30.0, "probe/easy/chosen": -20.0},
              {"step": 5, "learning_rate": 1e-3, "probe/difficult/chosen": -31.0, "probe/easy/chosen": -19.0}]
    s = tmp_path / "plots"
    for num, (loss, tau, seed) in enumerate([("dpo", 0.5, 0), ("mixdpo", 0.5, 0), ("mixdpo", 1.0, 0), ("mixdpo", 1.0, 1)]):
        arm_run(s, num, loss, seed, 50.0 + num, tau=tau, probes=probes)
    arms = group_arms(collect_runs(s))
    figures = {"arms": arms_figure(arms), "tau": against_tau_figure(arms), "curves": curves_figure(arms),
               "displacement": displacement_figure(arms)}
    for name, fig in figures.items():
        assert fig.axes, name
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())
    for name in ("arms", "tau"):
        (ax,) = [ax for ax in figures[name].axes if "win rate" in ax.get_xlabel() + ax.get_ylabel()]
        lines = [tuple(line.get_xdata() if name == "arms" else line.get_ydata()) for line in ax.get_lines()]
        assert (50.0, 50.0) in lines, (name, lines)
    assert figures["arms"].axes[0].get_xlabel() == "sandbox: win rate vs reference (%)"
    titles = [ax.get_title() for ax in figures["displacement"].axes]
    assert titles.count("learning rate in effect") == 1 and len(titles) == 2 * 3 + 1
    for fig in figures.values():
        pyplot().close(fig)
