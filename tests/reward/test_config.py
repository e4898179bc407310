"""conf/reward.yaml composes with every reward_model option, bad values fail by name, and
reward_command() gives back the exact typed config."""
from __future__ import annotations

import shlex

import pytest

import prefexp.reward  # noqa: F401  registers reward_schema
from prefexp.config import CONFIG_DIR
from prefexp.config.schema import DatasetConfig, ModelConfig
from prefexp.config.settings import ConfigError
from prefexp.reward import RewardModelConfig, reward_command
from prefexp.reward.validate import validate_reward
from tests.conftest import compose

OPTIONS = sorted(p.stem for p in (CONFIG_DIR / "reward_model").rglob("*.yaml"))


def reward_cfg(*overrides: str):
    return compose(["paths.run_dir=/tmp/prefexp-compose", *overrides], config_name="reward")


def test_reward_model_options_found():
    assert OPTIONS == ["default", "llm"]


@pytest.mark.parametrize("option", OPTIONS)
def test_option_composes_and_validates(option):
    c = validate_reward(reward_cfg(f"reward_model={option}"))
    assert c.model.name_or_path == "sandbox" and c.dataset.source == "sandbox" and c.score_dataset is None
    assert isinstance(c.reward_model, RewardModelConfig)


def test_default_option_equals_schema_defaults():
    assert validate_reward(reward_cfg()).reward_model == RewardModelConfig()


def test_score_dataset_group():
    c = validate_reward(reward_cfg("dataset@score_dataset=jsonl", "score_dataset.path=/data/x.jsonl"))
    assert c.score_dataset.source == "jsonl" and c.score_dataset.path == "/data/x.jsonl"


def test_every_problem_named_in_one_error():
    cfg = reward_cfg("reward_model.learning_rate=0", "reward_model.precision=fp8", "reward_model.max_steps=0",
                     "dataset.max_prompt_length=96", "reward_model.lr_scheduler=cosine_typo",
                     "dataset@score_dataset=jsonl")
    with pytest.raises(ConfigError) as err:
        validate_reward(cfg)
    message = str(err.value)
    for needle in ("reward_model.learning_rate=0.0 must be > 0", "reward_model.precision='fp8'",
                   "reward_model.max_steps=0", "dataset.max_prompt_length=96 must be < dataset.max_length=96",
                   "reward_model.lr_scheduler='cosine_typo'", "score_dataset.path is required"):
        assert needle in message, message


def test_unknown_key_fails_at_compose():
    with pytest.raises(Exception, match="foo"):
        reward_cfg("reward_model.foo=1")


def test_command_round_trip():
    """The command picks the closest option per group and adds only what differs."""
    model = ModelConfig(name_or_path="/models/my model", dtype="bfloat16")
    model.sandbox.hidden_size = 32
    dataset = DatasetConfig(source="jsonl", path="/data/pairs.jsonl", max_rows=96)
    hparams = RewardModelConfig(**{**vars(RewardModelConfig()), "learning_rate": 1e-5, "precision": "bf16",
                                   "per_device_batch_size": 4, "gradient_accumulation_steps": 8,
                                   "warmup_ratio": 0.03, "weight_decay": 0.01, "gradient_checkpointing": True,
                                   "score_batch_size": 16, "seed": 3})
    command = reward_command(model, dataset, hparams, "/tmp/cache dir")
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", "prefexp.reward"]
    assert args[3:5] == ["model=hf", "model.name_or_path='/models/my model'"]
    assert "dataset=jsonl" in args and "dataset.max_rows=96" in args
    assert "reward_model=llm" in args and "reward_model.seed=3" in args
    c = validate_reward(reward_cfg(*args[3:]))
    assert (c.model, c.dataset, c.reward_model) == (model, dataset, hparams)
    assert c.paths.cache_dir == "/tmp/cache dir"
