"""conf/evaluate.yaml + conf/eval/*: every option composes; bad configs fail naming the key."""
from __future__ import annotations

import json

import pytest
from hydra.errors import ConfigCompositionException

from prefexp.evaluate import CONFIG_DIR
from prefexp.evaluation import config as C
from prefexp.evaluation.manifest import resolve_checkpoint
from tests.evaluation.conftest import compose, settings

OPTIONS = sorted(p.stem for p in (CONFIG_DIR / "eval").rglob("*.yaml"))


def test_every_benchmark_has_a_config_and_a_runner():
    from prefexp.evaluation.runner import BENCHMARKS

    assert OPTIONS == sorted(C.BENCHMARKS) == sorted(BENCHMARKS) == ["alpaca_eval", "mt_bench", "sandbox"]


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_composes_to_its_dataclass(option):
    s = settings([f"eval={option}", "checkpoint=/some/run"])
    assert isinstance(s, C.EvaluateConfig) and type(s.eval) is C.SCHEMAS[option]
    assert s.eval.name == option and s.checkpoint == "/some/run"


def test_defaults():
    s = settings(["checkpoint=/r"])
    assert s.eval.name == "sandbox" and s.output_dir is None and s.wandb is True
    mt = settings(["checkpoint=/r", "eval=mt_bench"]).eval
    assert mt.judge.base_url == "https://api.openai.com/v1" and mt.judge.api_key_env == "OPENAI_API_KEY"
    assert mt.generation.temperature is None and mt.generation.max_new_tokens == 1024
    assert mt.category_temperatures == C.MT_BENCH_TEMPERATURES
    ae = settings(["checkpoint=/r", "eval=alpaca_eval"]).eval
    assert ae.annotator == "weighted_alpaca_eval_gpt4_turbo" and ae.reference == "gpt4_1106_preview"


def test_hydra_writes_nothing_of_its_own():
    cfg = compose(["checkpoint=/r"])
    assert "hydra" not in cfg  # only the job config reaches the code
    text = (CONFIG_DIR / "evaluate.yaml").read_text()
    assert "output_subdir: null" in text and "dir: ." in text


def test_exactly_one_entry(tmp_path):
    for overrides in ([], ["checkpoint=/r", "hf_model=gpt2"]):
        with pytest.raises(C.EvalConfigError, match="give exactly one of checkpoint=.*model=.*outputs=.*annotations="):
            C.validate(settings(overrides))
    assert C.entry_of(settings(["hf_model=/m"])) == ("hf_model", "/m")


def test_entry_specific_problems(tmp_path, judge_key):
    s = settings([f"annotations={tmp_path / 'none.json'}", "eval=sandbox"])
    with pytest.raises(C.EvalConfigError) as err:
        C.validate(s)
    assert "is not a file" in str(err.value) and "eval=sandbox evaluates a prefexp checkpoint" in str(err.value)
    # scoring existing judgments needs no judge (no key, no endpoint)
    judgments = tmp_path / "j.jsonl"
    judgments.write_text("{}\n")
    C.validate(settings([f"annotations={judgments}", "eval=mt_bench", "eval.judge.api_key_env=PREFEXP_UNSET_VAR"]))
    with pytest.raises(C.EvalConfigError, match="chat_template is only used with hf_model="):
        C.validate(settings([f"outputs={judgments}", "eval=mt_bench", "chat_template=x",
                             f"eval.judge.api_key_env={judge_key}"]))


@pytest.mark.parametrize("override", ["eval.no_such_key=1", "eval.judge.no_such=1", "no_such=1",
                                      "eval.annotator=x"])  # annotator exists for alpaca_eval only
def test_unknown_keys_fail_at_composition(override):
    with pytest.raises(ConfigCompositionException, match="Could not override"):
        compose(["checkpoint=/r", "eval=mt_bench", override])


def test_all_problems_listed_with_their_keys(judge_key):
    s = settings(["checkpoint=/r", "eval=mt_bench", "eval.judge.base_url=null", "eval.limit=0",
                  "eval.generation.backend=vllm", "eval.generation.top_p=0",
                  "eval.judge.api_key_env=PREFEXP_UNSET_VAR"])
    with pytest.raises(C.EvalConfigError) as err:
        C.validate(s)
    msg = str(err.value)
    for needle in ("eval.judge.base_url is not set", "eval.limit=0", "eval.generation.vllm_url",
                   "eval.generation.top_p=0", "PREFEXP_UNSET_VAR is not set"):
        assert needle in msg, msg


def test_judge_base_url_must_be_http(judge_key):
    s = settings(["checkpoint=/r", "eval=alpaca_eval", "eval.judge.base_url=localhost:8000",
                  f"eval.judge.api_key_env={judge_key}"])
    with pytest.raises(C.EvalConfigError, match="must start with http"):
        C.validate(s)


def test_alpaca_annotator_must_exist(judge_key):
    pytest.importorskip("alpaca_eval")
    s = settings(["checkpoint=/r", "eval=alpaca_eval", "eval.annotator=not_an_annotator",
                  f"eval.judge.api_key_env={judge_key}"])
    with pytest.raises(C.EvalConfigError, match="eval.annotator='not_an_annotator'"):
        C.validate(s)


def test_temperature_null_only_for_mt_bench():
    s = settings(["checkpoint=/r", "eval=sandbox", "eval.generation.temperature=null"])
    with pytest.raises(C.EvalConfigError, match="temperature=null"):
        C.validate(s)


def test_checkpoint_resolution(tiny_run):
    by_run = resolve_checkpoint(str(tiny_run))
    by_ckpt = resolve_checkpoint(str(tiny_run / "checkpoint"))
    assert by_run.path == by_ckpt.path == tiny_run / "checkpoint"
    assert by_run.output_root == tiny_run and by_ckpt.output_root == tiny_run / "checkpoint"
    assert by_run.run_dir == by_ckpt.run_dir == tiny_run
    assert by_run.model_dir == tiny_run / "checkpoint" and by_run.step == 7
    assert by_run.default_model_name() == "run-step7"
    with pytest.raises(C.EvalConfigError, match="no manifest.json"):
        resolve_checkpoint(str(tiny_run / "nowhere"))
    (tiny_run / "checkpoint" / "manifest.json").write_text(json.dumps({"step": 1}))
    with pytest.raises(C.EvalConfigError, match="lacks keys"):
        resolve_checkpoint(str(tiny_run))
