"""On the sandbox model a run evaluates itself by default (evaluate=[sandbox]); a real model is
evaluated only on the benchmarks asked for; evaluate=[] turns it off."""
from __future__ import annotations

from prefexp.setup.validate import validate
from tests.conftest import compose


def test_the_sandbox_model_evaluates_itself_by_default():
    assert validate(compose([])).config.evaluate == ["sandbox"]


def test_a_real_model_and_an_explicit_choice_are_left_as_they_are():
    hub = ["model=hf", "model.name_or_path=Qwen/Qwen2.5-0.5B"]  # a hub name: not loaded by validation
    assert validate(compose(hub)).config.evaluate == []
    assert validate(compose(["evaluate=[]"])).config.evaluate == []
    assert validate(compose([*hub, "evaluate=[alpaca_eval]"])).config.evaluate == ["alpaca_eval"]
