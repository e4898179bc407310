"""The sandbox reference's answers are generated once per reference and decoding and shared by
every evaluated run (prefexp/evaluation/reference_answers.py): the same answers as a generation in
the eval dir, a failed entry set aside and rebuilt, another decoding another entry."""
from __future__ import annotations

import json
import logging
import shutil

from prefexp.evaluation.runner import evaluate
from tests.evaluation.conftest import settings

ARGS = ["eval=sandbox", "eval.n_prompts=6", "eval.generation.max_new_tokens=6", "wandb=false"]


def _eval(run, out, *extra):
    return evaluate(settings([f"checkpoint={run}", *ARGS, f"output_dir={out}", *extra]))


def _outputs(out, name):
    return [r["output"] for r in json.loads((out / name).read_text())]


def test_the_reference_answers_once_for_every_run_and_as_it_would_in_the_eval_dir(tiny_run, tmp_path, caplog):
    cache = tmp_path / "cache"
    second = tmp_path / "second"
    shutil.copytree(tiny_run, second)  # another run, same reference
    with caplog.at_level(logging.INFO):
        first_res = _eval(tiny_run, tmp_path / "e1", f"eval.cache_dir={cache}")
        caplog.clear()
        second_res = _eval(second, tmp_path / "e2", f"eval.cache_dir={cache}")
    assert sorted(p.name for p in (cache / "sandbox_reference_answers").glob("*.json")) and \
        len(list((cache / "sandbox_reference_answers").glob("*.json"))) == 2  # greedy, sample
    assert "cached for every run" not in caplog.text and caplog.text.count("reference answers reused") == 2
    _eval(tiny_run, tmp_path / "e0", "eval.cache_dir=null")  # the reference generated in the eval dir
    for name in ("reference_outputs.json", "reference_outputs.sample.json"):
        assert _outputs(tmp_path / "e1", name) == _outputs(tmp_path / "e2", name) == _outputs(tmp_path / "e0", name)
    assert first_res["metrics"] == second_res["metrics"]


def test_a_damaged_entry_is_set_aside_and_rebuilt(tiny_run, tmp_path, caplog):
    cache = tmp_path / "cache"
    _eval(tiny_run, tmp_path / "e1", f"eval.cache_dir={cache}", "eval.decoding=[greedy]", "eval.headline=greedy")
    (entry,) = (cache / "sandbox_reference_answers").glob("*.json")
    entry.write_text(entry.read_text()[:-40])  # cut short
    with caplog.at_level(logging.WARNING):
        _eval(tiny_run, tmp_path / "e2", f"eval.cache_dir={cache}", "eval.decoding=[greedy]", "eval.headline=greedy")
    assert "failed its check" in caplog.text and entry.with_name(entry.name + ".corrupt").exists()
    assert _outputs(tmp_path / "e1", "reference_outputs.json") == _outputs(tmp_path / "e2", "reference_outputs.json")


def test_another_decoding_or_prompt_set_is_another_entry(tiny_run, tmp_path):
    cache = tmp_path / "cache"
    greedy = [f"eval.cache_dir={cache}", "eval.decoding=[greedy]", "eval.headline=greedy"]
    _eval(tiny_run, tmp_path / "e1", *greedy)
    _eval(tiny_run, tmp_path / "e2", *greedy, "eval.generation.max_new_tokens=3")
    _eval(tiny_run, tmp_path / "e3", *greedy, "eval.prompt_seed=7")
    assert len(list((cache / "sandbox_reference_answers").glob("*.json"))) == 3
