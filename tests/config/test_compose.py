"""Compose every option of every config group, and reject bad configs by name."""
from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from prefexp.config import CONFIG_DIR
from prefexp.config.settings import ConfigError
from prefexp.setup.validate import validate
from tests.conftest import compose

GROUPS = ["model", "dataset", "loss", "router", "curriculum", "trainer", "logger", "paths", "experiment", "debug",
          "deepspeed", "reward_model", "token_cleaning"]
# Exactly the option files each group holds: a file added or lost shows up here.
COUNTS = {"model": 2, "dataset": 5, "loss": 23, "router": 5, "curriculum": 4, "trainer": 1, "logger": 2, "paths": 1,
          "experiment": 12, "debug": 1, "deepspeed": 4, "reward_model": 2, "token_cleaning": 3}


def options(group: str) -> list[str]:
    return sorted(p.relative_to(CONFIG_DIR / group).with_suffix("").as_posix()
                  for p in (CONFIG_DIR / group).rglob("*.yaml"))


ALL = [(g, o) for g in GROUPS for o in options(g)]


def test_every_group_has_options():
    counts = {g: len(options(g)) for g in GROUPS}
    assert all(n >= 1 for n in counts.values()), counts
    assert len(ALL) == sum(counts.values())
    assert counts == COUNTS


def _required(group: str, option: str) -> list[str]:
    extra = []
    if (group, option) == ("model", "hf"):
        extra.append("model.name_or_path=some/model")
    if (group, option) == ("dataset", "jsonl"):
        extra.append(f"dataset.path={__file__}")  # an existing file: validation checks the path
    return extra


@pytest.mark.parametrize("group,option", ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_option_composes_and_validates(group, option):
    cfg = compose([f"{group}={option}", *_required(group, option)])
    HydraConfig.instance().set_config(cfg)
    settings = validate(cfg)
    assert OmegaConf.select(cfg, group) is not None or group in ("experiment", "debug")
    assert callable(settings.loss)


def test_tau_out_of_range_names_key_value_and_fix():
    cfg = compose(["tau=-3"])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert "tau=-3.0" in str(err.value) and "pass e.g. tau=0.5" in str(err.value)


def test_unknown_key_fails_at_compose():
    with pytest.raises(Exception, match="foo"):
        compose(["trainer.foo=1"])


def test_unknown_loss_lists_options():
    with pytest.raises(Exception, match="Available options in 'loss'"):
        compose(["loss=not_a_loss"])


def test_unknown_loss_hyperparameter_named():
    cfg = compose(["+loss.gamma=1", "loss=dpo"])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match=r"loss.gamma: unknown hyperparameter"):
        validate(cfg)


def test_ignored_tau_is_a_warning_not_an_error():
    cfg = compose(["loss=dpo", "router=none"])
    HydraConfig.instance().set_config(cfg)
    settings = validate(cfg)
    assert any("tau=0.5 is ignored" in w for w in settings.warnings)
    cfg = compose(["loss=mixdpo"])
    HydraConfig.instance().set_config(cfg)
    assert validate(cfg).warnings == []


@pytest.mark.parametrize("lr, warned", [(1e3, True), (0.05, True), (1e-2, False), (5e-4, False)])
def test_a_learning_rate_above_fine_tuning_rates_is_a_warning(lr, warned):
    settings = validate(compose(["loss=dpo", "router=none", "curriculum=none", f"trainer.learning_rate={lr}"]))
    assert any(w.startswith(f"trainer.learning_rate={lr:g} is far above") for w in settings.warnings) is warned


def test_mixdpo_tau_follows_top_level_tau():
    cfg = compose(["tau=1.5"])
    HydraConfig.instance().set_config(cfg)
    assert validate(cfg).loss.tau == 1.5


def test_sweep_job_dir_names_stay_valid_file_names():
    import hashlib

    from prefexp.config import short_dirname

    assert short_dirname("loss=dpo,tau=0.5") == "loss=dpo,tau=0.5"
    long = ",".join(f"trainer.key{i}=value{i}" for i in range(20))
    name = short_dirname(long)
    assert name == long[:120] + "-" + hashlib.sha256(long.encode()).hexdigest()[:8] and len(name) == 129
    assert short_dirname(long + "x") != name  # same prefix, different overrides: different dirs
    assert "/" not in short_dirname("dataset.path=/data/x.jsonl")
    cfg = compose(["paths.run_dir=/tmp/x"])
    assert "prefexp_job_name" in OmegaConf.to_yaml(cfg.hydra.sweep, resolve=False)  # 0_mixdpo-tau0.5-s0


def test_one_problem_is_one_line_several_are_listed():
    cfg = compose(["trainer.learning_rate=-1"])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value) == ("invalid config: trainer.learning_rate=-1.0 must be a finite number >= 0; "
                              "pass e.g. trainer.learning_rate=5e-7")
    cfg = compose(["trainer.learning_rate=-1", "+trainer.max_stepz=3"])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).splitlines() == [
        "invalid config:",
        "  - trainer.max_stepz=3 is not a config key; did you mean trainer.max_steps?",
        "  - trainer.learning_rate=-1.0 must be a finite number >= 0; pass e.g. trainer.learning_rate=5e-7"]
