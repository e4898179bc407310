"""Master weights, ``model.attn_implementation`` and ``trainer.tf32`` as configs compose them."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from hydra.core.hydra_config import HydraConfig

from prefexp.config.settings import ConfigError
from prefexp.setup.validate import validate
from prefexp.engine.precision import deepspeed_keeps_master_weights, policy_dtype, tf32_argument
from tests.conftest import compose

HF = ["model=hf", "model.name_or_path=some/model", "model.dtype=bfloat16", "trainer.precision=bf16"]


def settings(overrides: list[str]):
    cfg = compose(overrides)
    HydraConfig.instance().set_config(cfg)
    return validate(cfg)


@pytest.mark.parametrize("name", ["dpo_qwen25_05b", "apo_hinge_zero_qwen25_05b"])
def test_qwen_05b_recipes_train_float32_master_weights_with_bf16_compute(name):
    """The recipes load a bf16 checkpoint at lr 1e-6 on one GPU without DeepSpeed: the policy must
    be float32 (AdamW on bf16 weights moved 1 % of them in 10 steps) and compute under bf16 autocast."""
    c = settings([f"experiment={name}"]).config
    assert (c.model.dtype, c.trainer.precision, c.trainer.learning_rate) == ("bfloat16", "bf16", 1e-6)
    assert not c.deepspeed.enabled and c.adapter.kind == "none"
    assert policy_dtype(c) == "float32"


@pytest.mark.parametrize("overrides, expected", [
    ([], "float32"),  # plain Trainer: float32 masters whatever model.dtype says
    (["adapter=lora"], "bfloat16"),  # frozen base; peft makes the adapter float32
    (["deepspeed=zero2"], "bfloat16"),  # ZeRO keeps float32 partitions itself
    (["deepspeed=zero3"], "bfloat16"),
    (["deepspeed=zero2", "deepspeed.config.zero_optimization.stage=0"], "bfloat16"),  # DeepSpeed's bf16 optimizer
    (["deepspeed=zero2", "deepspeed.config.zero_optimization.stage=0", "trainer.precision=fp32"], "float32"),
])
def test_policy_dtype_follows_who_keeps_the_master_weights(overrides, expected):
    assert policy_dtype(settings(HF + overrides).config) == expected


def test_deepspeed_stage_0_in_fp32_has_no_master_copy():
    assert deepspeed_keeps_master_weights(True, {"zero_optimization": {"stage": 0}}, "fp32") is False
    assert deepspeed_keeps_master_weights(True, {}, "bf16") is True
    assert deepspeed_keeps_master_weights(True, {"zero_optimization": {"stage": 1}}, "fp32") is True
    assert deepspeed_keeps_master_weights(False, {"zero_optimization": {"stage": 3}}, "bf16") is False


def test_attn_implementation_is_validated_by_name():
    with pytest.raises(ConfigError) as err:
        settings(HF + ["model.attn_implementation=flash"])
    assert str(err.value) == ("invalid config: model.attn_implementation='flash' is not one of "
                              "['sdpa', 'flash_attention_2', 'eager'] or null (transformers' default)")
    for ok in ("sdpa", "eager"):
        assert settings(HF + [f"model.attn_implementation={ok}"]).config.model.attn_implementation == ok


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is the CPU-only machine's")
def test_flash_attention_2_is_refused_without_cuda():
    with pytest.raises(ConfigError) as err:
        settings(HF + ["model.attn_implementation=flash_attention_2"])
    assert str(err.value) == ("invalid config: model.attn_implementation=flash_attention_2 needs a CUDA GPU and none "
                              "is visible; pass model.attn_implementation=sdpa")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flash_attention_2_on_cuda_needs_the_package_and_half_precision():
    if importlib.util.find_spec("flash_attn") is None:
        with pytest.raises(ConfigError, match="needs the flash_attn package"):
            settings(HF + ["model.attn_implementation=flash_attention_2"])
        return
    with pytest.raises(ConfigError, match="computes in bf16 / fp16 only"):
        settings(HF + ["model.attn_implementation=flash_attention_2", "trainer.precision=fp32"])
    c = settings(HF + ["model.attn_implementation=flash_attention_2"]).config
    assert c.model.attn_implementation == "flash_attention_2"


def test_tf32_defaults_to_torchs_choice_and_is_skipped_without_an_ampere_gpu():
    assert settings(HF).config.trainer.tf32 is None
    assert tf32_argument(None) is None and tf32_argument(False) is False
    from transformers.utils import is_torch_tf32_available

    assert tf32_argument(True) is (True if is_torch_tf32_available() else None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tf32_true_turns_tf32_matmuls_on(tmp_path):
    from transformers.utils import is_torch_tf32_available

    if not is_torch_tf32_available():
        pytest.skip("needs an Ampere or newer GPU")
    from prefexp.pipeline.trainer_setup import training_arguments

    training_arguments(settings(HF + ["trainer.tf32=true"]).config, tmp_path)
    assert torch.backends.fp32_precision == "tf32"  # what transformers sets on torch >= 2.9
