"""The block a training job ends with (prefexp.reporting.run_summary), on a hand-made run dir:
every number in it is derived here from the files it reads."""
from __future__ import annotations

import json

from prefexp.evaluation.sandbox_bench import summarize_gold
from prefexp.reporting.run_summary import run_summary


def _run_dir(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    # 20 steps: the "final" window is the last 10 % of steps (steps > 18), i.e. the rows of 19 and 20
    rows = [{"step": s, "loss": 0.7 - 0.01 * s, "rewards/accuracies": 0.5 + 0.01 * s} for s in range(1, 21)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "eval_metrics.jsonl").write_text(json.dumps({"step": 10, "eval_loss": 0.65}) + "\n"
                                            + json.dumps({"step": 20, "eval_loss": 0.6125}) + "\n")
    return run


def test_steps_final_window_heldout_and_no_evaluation(tmp_path):
    run = _run_dir(tmp_path)
    lines = run_summary(run)
    assert lines[0] == f"run summary: {run}"
    assert lines[1] == "  trained: 20 optimizer steps"
    # loss (0.51 + 0.50) / 2 = 0.505, accuracies (0.69 + 0.70) / 2 = 0.695
    assert lines[2] == ("  final train metrics (mean of the last 2 logged rows, the last 10 % of steps): "
                        "loss 0.5050, rewards/accuracies 0.6950")
    assert lines[3] == "  held-out pairs (step 20): eval_loss 0.6125"  # the last evaluation, not the first
    assert lines[4].startswith("  evaluation: none (evaluate=[sandbox]")
    assert lines[5] == "  artifacts (in the run dir): checkpoint, metrics.jsonl, eval_metrics.jsonl"


def test_each_evaluation_with_its_protocols_and_a_failed_one(tmp_path):
    run = _run_dir(tmp_path)
    sample = summarize_gold(list("abcd"), [9.0, 5.0, 2.0, 7.0], [3.0, 5.0, 8.0, 6.0])  # 62.5, 1 tie of 4
    res = {"benchmark": "sandbox", "model_name": "run-step20", "n_items": 4, "judge": {"kind": "gold_score"},
           "metrics": {**sample, "sample": sample, "headline": "sample"},
           "generation": {"protocols": {"sample": {}}}}
    (run / "eval" / "sandbox").mkdir(parents=True)
    (run / "eval" / "sandbox" / "results.json").write_text(json.dumps(res))
    (run / "eval" / "mt_bench").mkdir()
    (run / "eval" / "mt_bench" / "FAILED").write_text("EvaluationFailed: eval=mt_bench exited with code 3\n")
    lines = run_summary(run)
    assert f"  evaluation mt_bench: FAILED, see {run / 'eval' / 'mt_bench' / 'FAILED'}" in lines
    at = lines.index(next(line for line in lines if line.startswith("  evaluation sandbox run-step20: win_rate=62.500")))
    assert lines[at + 1].startswith("    sample (headline): win rate 62.50 % [15.59, 109.41], ties 25.0 % (W/T/L 2/1/1)")
    assert lines[-1].endswith("eval/mt_bench/, eval/sandbox/")
