"""prefexp/benchmark_registry.py: the one list of benchmarks, every table derived from it, the did-you-mean."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefexp.evaluation import config, results, runner
from prefexp.benchmark_registry import BENCHMARKS, unknown_benchmark
from prefexp.reporting import collect

REPO = Path(__file__).resolve().parents[2]


def yaml_benchmarks() -> list[str]:
    """conf/eval/*.yaml that are benchmarks: each extends its schema, ``base_<its name>``."""
    names = []
    for path in sorted((REPO / "conf" / "eval").glob("*.yaml")):
        defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
        if f"base_{path.stem}" in defaults:
            names.append(path.stem)
    return names


def test_registry_names_are_the_benchmark_yaml_files():
    assert sorted(BENCHMARKS) == yaml_benchmarks() == ["alpaca_eval", "mt_bench", "sandbox"]
    assert all(b.name == name for name, b in BENCHMARKS.items())


@pytest.mark.parametrize("table", [
    runner.BENCHMARKS, config.SCHEMAS, results.HEADLINE, results.DECIMALS, collect.HEADLINE,
    dict.fromkeys(config.BENCHMARKS)],
    ids=["runner.BENCHMARKS", "config.SCHEMAS", "results.HEADLINE", "results.DECIMALS", "collect.HEADLINE",
         "config.BENCHMARKS"])
def test_every_derived_table_has_exactly_the_registry_keys(table):
    assert sorted(table) == sorted(BENCHMARKS)


def test_derived_values_are_the_registry_entries():
    for name, b in BENCHMARKS.items():
        assert runner.BENCHMARKS[name] == b.module and (REPO / (b.module.replace(".", "/") + ".py")).is_file()
        assert config.SCHEMAS[name].name == name  # the schema's own default name
        assert collect.HEADLINE[name] == b.headline and b.headline in b.summary
        assert results.HEADLINE[name] == b.summary and results.DECIMALS[name] == b.decimals
    # the values the tables held before the registry
    assert collect.HEADLINE == {"alpaca_eval": "length_controlled_winrate", "mt_bench": "score", "sandbox": "win_rate"}
    assert results.DECIMALS == {"alpaca_eval": 2, "mt_bench": 6, "sandbox": 3}


def test_entries_are_frozen():
    with pytest.raises(AttributeError):
        BENCHMARKS["sandbox"].decimals = 5  # type: ignore[misc]


def test_registry_imports_nothing_of_prefexp_and_nothing_heavy():
    code = ("import sys, prefexp.benchmark_registry; "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('prefexp', 'torch', 'transformers', "
            "'omegaconf', 'hydra', 'yaml')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['prefexp', 'prefexp.benchmark_registry']"


def test_known_names_are_no_problem():
    assert all(unknown_benchmark(name) is None for name in ["alpaca_eval", "mt_bench", "sandbox"])


def test_did_you_mean_a_close_name():
    assert unknown_benchmark("alpca_eval") == ("eval=alpca_eval is not a benchmark; did you mean alpaca_eval? "
                                               "options: alpaca_eval, mt_bench, sandbox (conf/eval/)")


def test_nothing_close_no_suggestion():
    assert unknown_benchmark("zzz") == "eval=zzz is not a benchmark; options: alpaca_eval, mt_bench, sandbox (conf/eval/)"


def test_the_key_is_what_the_user_typed():
    assert unknown_benchmark("mt_bnch", key="evaluate") == (
        "evaluate=mt_bnch is not a benchmark; did you mean mt_bench? options: alpaca_eval, mt_bench, sandbox "
        "(conf/eval/)")
    assert unknown_benchmark("base_sandbox") == (  # a schema node, not a benchmark
        "eval=base_sandbox is not a benchmark; did you mean sandbox? options: alpaca_eval, mt_bench, sandbox "
        "(conf/eval/)")


def test_validate_rejects_an_unknown_eval_name():
    cfg = config.EvaluateConfig(checkpoint="/some/run", eval=config.SandboxConfig(name="sandbx"))
    cfg.eval.generation.temperature = 0.0
    with pytest.raises(config.EvalConfigError) as err:
        config.validate(cfg)
    assert str(err.value) == ("invalid evaluation config:\n  - eval.name=sandbx is not a benchmark; did you mean "
                              "sandbox? options: alpaca_eval, mt_bench, sandbox (conf/eval/)")


def test_entry_point_unknown_eval_name_exit_2_before_any_model(tmp_path):
    """``eval.name=`` past Hydra's group check: one error line, exit 2, nothing written or loaded."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "prefexp.evaluate", "eval.name=alpca_eval",
                           f"checkpoint={tmp_path / 'no_such_run'}", f"output_dir={tmp_path / 'out'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert ("- eval.name=alpca_eval is not a benchmark; did you mean alpaca_eval? options: alpaca_eval, mt_bench, "
            "sandbox (conf/eval/)") in proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
