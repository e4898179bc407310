"""Sandbox benchmark: gold-score win rate against the reference model (ties count half)."""
from __future__ import annotations

import json
import shutil

import pytest

from prefexp.evaluation.runner import evaluate
from prefexp.evaluation.sandbox_bench import compare_with_gold, per_prompt_scores, summarize_gold
from tests.evaluation.conftest import settings, write_manifest


def test_compare_with_gold_by_hand():
    """Scores (policy, reference): (9, 3) win, (5, 5) tie, (2, 8) loss, (7, 6) win.
    wins = [1, .5, 0, 1] -> win_rate = 62.5; std(ddof=1) = 0.4787 -> se = 100 * 0.4787 / 2 = 23.94;
    mean gold 23/4 = 5.75 vs 22/4 = 5.5."""
    table = {("a", "p"): 9, ("a", "r"): 3, ("b", "p"): 5, ("b", "r"): 5,
             ("c", "p"): 2, ("c", "r"): 8, ("d", "p"): 7, ("d", "r"): 6}
    m = compare_with_gold(list("abcd"), ["p"] * 4, ["r"] * 4, lambda q, a: table[(q, a)])
    assert m["win_rate"] == 62.5
    assert m["standard_error"] == pytest.approx(23.935677, abs=1e-6)
    assert (m["n_wins"], m["n_ties"], m["n_losses"], m["n_total"]) == (2, 1, 1, 4)
    assert m["mean_gold_score"] == 5.75 and m["reference_mean_gold_score"] == 5.5
    assert "by_task" not in m


def test_paired_difference_and_per_task_by_hand():
    """Same table; tasks: a, b -> "x"; c, d -> "y". Paired d = [6, 0, -6, 1]: mean 0.25,
    std(ddof=1) = sqrt(((5.75)^2 + (.25)^2 + (6.25)^2 + (.75)^2) / 3) = sqrt(72.75 / 3) = 4.9244,
    se = 4.9244 / 2 = 2.4622. Task x: wins [1, .5] -> 75, d = [6, 0] -> 3 +- 3; task y: wins
    [0, 1] -> 50, d = [-6, 1] -> -2.5 +- 3.5."""
    table = {("a", "p"): 9, ("a", "r"): 3, ("b", "p"): 5, ("b", "r"): 5,
             ("c", "p"): 2, ("c", "r"): 8, ("d", "p"): 7, ("d", "r"): 6}
    m = compare_with_gold(list("abcd"), ["p"] * 4, ["r"] * 4, lambda q, a: table[(q, a)],
                          task_of=lambda q: "x" if q in "ab" else "y")
    assert m["gold_difference"] == 0.25
    assert m["gold_difference_se"] == pytest.approx((72.75 / 3) ** 0.5 / 2, rel=1e-12)
    x, y = m["by_task"]["x"], m["by_task"]["y"]
    assert (x["win_rate"], x["gold_difference"], x["n_total"]) == (75.0, 3.0, 2)
    assert x["gold_difference_se"] == pytest.approx(3.0, rel=1e-12)
    assert (y["win_rate"], y["gold_difference"], y["n_total"]) == (50.0, -2.5, 2)
    assert y["gold_difference_se"] == pytest.approx(3.5, rel=1e-12)
    assert x["mean_gold_score"] == 7.0 and y["reference_mean_gold_score"] == 7.0


def test_several_answers_per_prompt_make_the_prompt_the_unit():
    """k = 2 answers per prompt, prompt-major. Prompt a: (9, 3) win, (5, 5) tie -> 0.75;
    prompt b: (2, 8) loss, (7, 6) win -> 0.5. win_rate = 62.5 as over 4 answers, but the SE is over
    the 2 prompt means: std(.75, .5) = 0.17678 -> se = 12.5; ties 1 of 4; differences per prompt
    (6 + 0) / 2 = 3 and (-6 + 1) / 2 = -2.5 -> 0.25 +- 2.75."""
    g_pol, g_ref = [9.0, 5.0, 2.0, 7.0], [3.0, 5.0, 8.0, 6.0]
    m = summarize_gold(["a", "b"], g_pol, g_ref, k=2)
    assert m["win_rate"] == 62.5 and m["standard_error"] == pytest.approx(12.5, rel=1e-12)
    assert (m["n_total"], m["n_prompts"], m["answers_per_prompt"], m["tie_share"]) == (4, 2, 2, 0.25)
    assert m["gold_difference"] == 0.25 and m["gold_difference_se"] == pytest.approx(2.75, rel=1e-12)
    assert m["win_rate_ci95_low"] == pytest.approx(62.5 - 1.959964 * 12.5, rel=1e-12)
    assert per_prompt_scores(["a", "b"], g_pol, g_ref, k=2)["win_rate"] == {"a": 75.0, "b": 50.0}


def test_policy_equal_to_reference_wins_half(tiny_run):
    """Policy weights == reference weights (both the tiny GPT-2) -> identical greedy answers ->
    every prompt a tie -> win rate exactly 50 and equal mean gold scores."""
    pytest.importorskip("prefexp.sandbox.task", reason="prefexp.sandbox is not available yet")
    res = evaluate(settings([f"checkpoint={tiny_run}", "eval=sandbox", "eval.n_prompts=6",
                             "eval.generation.max_new_tokens=8", "wandb=false"]))
    m = res["metrics"]
    assert m["win_rate"] == 50.0 and m["n_ties"] == 6 and m["standard_error"] == 0.0
    assert m["mean_gold_score"] == m["reference_mean_gold_score"]
    assert 1.0 <= m["mean_gold_score"] <= 10.0
    out = tiny_run / "eval" / "sandbox"
    pol = json.loads((out / "model_outputs.json").read_text())
    ref = json.loads((out / "reference_outputs.json").read_text())
    assert [r["output"] for r in pol] == [r["output"] for r in ref] and len(pol) == 6
    assert json.loads((out / "results.json").read_text())["judge"]["kind"] == "gold_score"
    # sampled protocol (the default eval.decoding=[greedy, sample]): the same seed and batches give the
    # two equal models the same samples -> all ties again; the samples are not the greedy answers
    s = m["sample"]
    assert (s["win_rate"], s["tie_share"], s["n_total"], s["answers_per_prompt"]) == (50.0, 1.0, 6, 1)
    assert m["sample"]["win_rate"] == m["win_rate"] and m["headline"] == "sample"  # the calibrated headline
    sampled = json.loads((out / "model_outputs.sample.json").read_text())
    assert [r["output"] for r in sampled] != [r["output"] for r in pol]
    assert res["generation"]["protocols"]["sample"]["temperature"] == 1.0


@pytest.mark.slow
def test_matches_the_sandbox_models_own_gold_score(tmp_path):
    """Cross-check with prefexp.sandbox: the SFT sandbox model's mean gold score on the build's
    200 held-out prompts (seed 1234), as its build summary reports it, is what this benchmark
    measures for the same model on the same prompts (greedy, 64 new tokens). 2-5 minutes on CPU."""
    pytest.importorskip("prefexp.sandbox.model", reason="prefexp.sandbox is not available yet")
    from prefexp.sandbox.model import ensure_sandbox_model

    model = ensure_sandbox_model(tmp_path / "cache", sft_steps=60)
    expected = json.loads((model / "DONE").read_text())["mean_gold_score"]
    run = tmp_path / "run"
    shutil.copytree(model, run / "checkpoint")
    write_manifest(run / "checkpoint", run, str(model))
    manifest = json.loads((run / "checkpoint" / "manifest.json").read_text())
    manifest["chat_template"] = None  # the sandbox tokenizer carries its own template
    (run / "checkpoint" / "manifest.json").write_text(json.dumps(manifest))
    built = json.loads((model / "DONE").read_text())["args"]["eval_prompts"]  # the build scores fewer
    res = evaluate(settings([f"checkpoint={run}", "eval=sandbox", f"eval.n_prompts={built}", "wandb=false"]))
    assert res["metrics"]["reference_mean_gold_score"] == pytest.approx(expected, abs=1e-9)
    assert res["metrics"]["win_rate"] == 50.0


def test_each_protocol_prints_its_win_rate_ci_ties_and_gold_difference():
    """The hand table of test_compare_with_gold_by_hand as the sampled headline: win 62.5 with
    SE 23.9357 -> CI 62.5 -+ 1.959964 x 23.9357 = [15.59, 109.41]; 1 tie of 4 = 25.0 %; paired
    d = [6, 0, -6, 1] -> +0.250, SE 2.4622 -> [-4.576, +5.076]. Greedy: all four tied."""
    from prefexp.evaluation.results import protocol_lines

    sample = summarize_gold(list("abcd"), [9.0, 5.0, 2.0, 7.0], [3.0, 5.0, 8.0, 6.0])
    greedy = summarize_gold(list("abcd"), [5.0] * 4, [5.0] * 4)
    res = {"metrics": {**sample, "greedy": greedy, "sample": sample, "headline": "sample"},
           "generation": {"protocols": {"greedy": {}, "sample": {}}}}
    assert protocol_lines(res) == [
        "  greedy: win rate 50.00 % [50.00, 50.00], ties 100.0 % (W/T/L 0/4/0); gold 5.000 vs reference "
        "5.000, paired diff +0.000 [+0.000, +0.000] (4 prompts x 1)",
        "  sample (headline): win rate 62.50 % [15.59, 109.41], ties 25.0 % (W/T/L 2/1/1); gold 5.750 vs "
        "reference 5.500, paired diff +0.250 [-4.576, +5.076] (4 prompts x 1)"]
    assert protocol_lines({"metrics": {"score": 6.0}}) == []  # MT-Bench, AlpacaEval: no protocols


def test_the_cli_prints_both_protocols(tiny_run):
    """``python -m prefexp.evaluate checkpoint=<run> eval=sandbox``: the summary line, then one line
    per protocol; equal models -> every prompt tied under both."""
    import subprocess
    import sys

    from tests.helpers import REPO

    proc = subprocess.run([sys.executable, "-m", "prefexp.evaluate", f"checkpoint={tiny_run}", "eval=sandbox",
                           "eval.n_prompts=4", "eval.generation.max_new_tokens=4", "wandb=false",
                           f"output_dir={tiny_run / 'eval_cli'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("sandbox "))
    assert lines[at + 1].startswith("  greedy: win rate 50.00 % [50.00, 50.00], ties 100.0 % (W/T/L 0/4/0)")
    assert lines[at + 2].startswith("  sample (headline): win rate 50.00 % [50.00, 50.00], ties 100.0 % (W/T/L 0/4/0)")
