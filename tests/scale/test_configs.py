"""Every scaling config composes: experiment recipes, DeepSpeed options, launcher and sweeper."""
from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from prefexp.config import CONFIG_DIR
from prefexp.config.settings import ConfigError
from prefexp.setup.validate import validate
from tests.conftest import compose

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").rglob("*.yaml"))
DEEPSPEED = sorted(p.stem for p in (CONFIG_DIR / "deepspeed").rglob("*.yaml"))


def composed(overrides: list[str]):
    cfg = compose(overrides)
    HydraConfig.instance().set_config(cfg)
    return cfg, validate(cfg)


def test_counts():
    assert len(EXPERIMENTS) == 12, EXPERIMENTS
    assert DEEPSPEED == ["none", "zero2", "zero3", "zero3_offload"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_validates(name):
    cfg, settings = composed([f"experiment={name}"])
    text = (CONFIG_DIR / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiment files set global keys"
    assert "Expects" in text or name.startswith("sandbox"), "a recipe names the GPUs and hours it expects"
    c = settings.config
    if c.deepspeed.enabled:  # the DeepSpeed batch is the trainer's, never a hand-kept number
        assert c.deepspeed.config["train_micro_batch_size_per_gpu"] == c.trainer.per_device_batch_size
        assert c.deepspeed.config["gradient_accumulation_steps"] == c.trainer.gradient_accumulation_steps


def test_mixdpo_recipe_has_the_published_settings():
    _, s = composed(["experiment=mixdpo_llama3_8b_sft"])
    c = s.config
    assert (s.loss.beta, s.loss.label_smoothing, s.loss.tau) == (0.01, 0.1, 0.5)
    assert (c.trainer.per_device_batch_size, c.trainer.gradient_accumulation_steps, c.trainer.devices) == (5, 4, 8)
    assert (c.trainer.learning_rate, c.trainer.lr_scheduler, c.trainer.warmup_ratio) == (1e-6, "cosine", 0.1)
    assert (c.dataset.max_length, c.dataset.max_prompt_length, c.trainer.precision) == (1024, 512, "bf16")
    assert c.deepspeed.config["zero_optimization"]["stage"] == 3 and c.curriculum.order == "easy_to_hard"
    assert c.model.name_or_path == "princeton-nlp/Llama-3-Base-8B-SFT"
    _, d = composed(["experiment=dpo_llama3_8b_sft"])
    assert d.loss_name == "dpo" and d.config.trainer == c.trainer and d.config.router.name == "none"


@pytest.mark.parametrize("option", DEEPSPEED)
def test_deepspeed_option_follows_the_trainer(option):
    _, s = composed([f"deepspeed={option}", "trainer.per_device_batch_size=3", "trainer.gradient_accumulation_steps=7",
                     "trainer.max_grad_norm=0.5"])
    ds = s.config.deepspeed
    assert ds.enabled == (option != "none")
    if ds.enabled:
        assert (ds.config["train_micro_batch_size_per_gpu"], ds.config["gradient_accumulation_steps"],
                ds.config["gradient_clipping"]) == (3, 7, 0.5)


def test_hand_kept_deepspeed_number_is_rejected():
    with pytest.raises(ConfigError, match=r"deepspeed.config.train_micro_batch_size_per_gpu=4 differs from "
                                          r"trainer.per_device_batch_size=16"):
        composed(["deepspeed=zero2", "deepspeed.config.train_micro_batch_size_per_gpu=4"])


def test_devices_must_be_a_count_or_auto():
    composed(["trainer.devices=auto"])
    with pytest.raises(ConfigError, match="trainer.devices=0 must be an integer >= 1 or 'auto'"):
        composed(["trainer.devices=0"])


def test_optuna_sweeper_composes():
    cfg = compose(["hydra/sweeper=optuna_beta_lr"])
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    assert sweeper["_target_"].endswith("OptunaSweeper") and sweeper["direction"] == "maximize"
    assert set(sweeper["params"]) == {"loss.beta", "trainer.learning_rate"}


def test_sweep_summary_callback_is_registered():
    cfg = compose([])
    assert cfg.hydra.callbacks.sweep_summary._target_ == "prefexp.reporting.sweep.SweepSummary"


def test_wandb_entity_from_the_local_file(tmp_path):
    """The git-ignored conf/local/default.yaml (a `# @package _global_` file) sets the W&B entity."""
    import shutil

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    (conf / "local" / "default.yaml").write_text("# @package _global_\nlogger:\n  entity: my-team\n  project: uf\n")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=["paths.run_dir=/tmp/x"])
    assert (cfg.logger.entity, cfg.logger.project) == ("my-team", "uf")
