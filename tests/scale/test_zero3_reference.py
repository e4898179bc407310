"""The reference pass under ZeRO-3 keeps the weights partitioned, and gives the unsharded numbers.

Fast tests: the inference config made from the training's ZeRO-3 JSON, the choice of path per
DeepSpeed stage, the safetensors reader, and the peak-memory figures' names.

Slow test (the issue's "done when"; ~7 min on 2 busy CPU cores, ~7 GB RAM at most):

    PYTHONPATH=$PWD python -m pytest -m slow -s tests/scale/test_zero3_reference.py

A random Llama of 606M parameters (2.3 GiB in fp32) is saved as safetensors; the reference pass of
12 pairs runs once unsharded (one process, the plain path) and once under ``deepspeed=zero3``
with two CPU ranks (``torchrun``), each in a fresh process (``zero3_reference_probe``). Checked:
the same cache file name and the same log-probs within 1e-5 relative (float32: the only
difference allowed is the order of the sums), and each ZeRO-3 rank's peak RSS added by the pass
at most 0.6x the unsharded pass's. Ideal: 0.5x (half the weights) plus one layer's gathered
weights and ZeRO-3's per-module bookkeeping. The figures are printed.

Memory is the RSS the pass adds on top of the process's RSS when it starts (imports of torch,
transformers and DeepSpeed are ~0.5 GB per process and are not the pass's). Both processes run
with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB: by default glibc raises that threshold
after the first large free and then keeps freed multi-MB chunks in its heap, which RSS counts
as held (ZeRO-3 frees a full-size tensor per parameter while partitioning it); with the fixed
threshold RSS is the live memory.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prefexp.engine.zero3_reference import SafetensorsIndex, inference_config, zero3_sharding

from .conftest import run
from .zero3_reference_probe import synthetic_examples, training_zero3_config


def test_inference_config_keeps_partitioning_and_fills_every_auto():
    """From conf/deepspeed/zero3.yaml: stage 3 kept, optimizer gone, one micro-batch per rank,
    DeepSpeed's hidden-size fills (h*h, 10h), nothing kept gathered for reuse."""
    config = inference_config(training_zero3_config(), hidden_size=768, world=2, dtype="float32")
    zero = config["zero_optimization"]
    assert zero["stage"] == 3 and "optimizer" not in config and "scheduler" not in config
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"],
            config["train_batch_size"]) == (1, 1, 2)
    assert zero["reduce_bucket_size"] == 768 * 768 and zero["stage3_param_persistence_threshold"] == 7680
    assert zero["stage3_prefetch_bucket_size"] == 0 and zero["stage3_max_reuse_distance"] == 0
    assert config["bf16"] == {"enabled": False} and config["fp16"] == {"enabled": False}
    assert "auto" not in json.dumps(config)
    bf16 = inference_config(training_zero3_config(), 768, 2, "bfloat16")
    assert bf16["bf16"] == {"enabled": True}, "zero.Init keeps the weights in model.dtype"


def test_offload_config_keeps_parameter_offload_only():
    from omegaconf import OmegaConf

    from .zero3_reference_probe import REPO

    tree = OmegaConf.create({"trainer": {"per_device_batch_size": 2, "gradient_accumulation_steps": 4,
                                         "max_grad_norm": 1.0, "learning_rate": 1e-6, "weight_decay": 0.0},
                             "deepspeed": OmegaConf.load(REPO / "conf" / "deepspeed" / "zero3_offload.yaml")})
    training = OmegaConf.to_container(tree, resolve=True)["deepspeed"]["config"]
    config = inference_config(training, 4096, 8, "bfloat16")
    assert config["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert "offload_optimizer" not in config["zero_optimization"] and "optimizer" not in config
    assert config["train_batch_size"] == 8


def test_only_zero_stage_3_partitions_the_reference():
    zero3 = training_zero3_config()
    zero2 = {**zero3, "zero_optimization": {**zero3["zero_optimization"], "stage": 2}}
    assert zero3_sharding(True, zero3, "float32", False) is not None
    assert zero3_sharding(True, zero2, "float32", False) is None, "ZeRO-2: the plain path stays"
    assert zero3_sharding(False, zero3, "float32", False) is None, "deepspeed=none"


def test_safetensors_reader_matches_the_library(tmp_path):
    """Plain reads of the byte ranges give the tensors safetensors itself loads, in their dtypes."""
    import torch
    from safetensors.torch import save_file

    tensors = {"a": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
               "b": torch.tensor([1.5, -2.25], dtype=torch.bfloat16), "c": torch.tensor([3, -4], dtype=torch.int64),
               "empty": torch.zeros(0, 5)}
    save_file(tensors, tmp_path / "m.safetensors")
    index = SafetensorsIndex([tmp_path / "m.safetensors"])
    for name, t in tensors.items():
        got = index.read(name)
        assert got.dtype == t.dtype and got.shape == t.shape and torch.equal(got, t)
    assert "a" in index and "z" not in index


def test_peak_memory_is_the_peak_of_the_window():
    """128 MiB touched and freed before the window, 64 MiB inside it: the window's peak is 64 MiB
    above its start (4 kB pages: within 1 MiB), not 128 (VmHWM was reset), and is named per rank."""
    from prefexp.engine.memory import current_rss_mb, gather_peaks, reset_peak

    before = b"\x01" * (128 << 20)
    del before
    start = current_rss_mb()
    resettable = reset_peak()
    block = b"\x01" * (64 << 20)  # bytes of 0x01: every page written, so resident
    del block
    figures = gather_peaks("memory/reference", start_rss_mb=start)
    assert set(figures) == {"memory/reference/peak_rss_mb/rank0", "memory/reference/peak_rss_above_start_mb/rank0"}
    above = figures["memory/reference/peak_rss_above_start_mb/rank0"]
    assert above >= 63
    if resettable:
        assert above < 100, "the 128 MiB before the window is not this window's peak"


def test_memory_callback_adds_the_reference_figures_once_then_each_window():
    """The reference pass's figures wait for the first training log row; every row with a loss
    gets the window's peaks; rows without a loss (the Trainer's final summary) get nothing."""
    from types import SimpleNamespace

    from prefexp.engine.memory import PeakMemoryCallback, measured

    with measured("a stand-in reference pass", "memory/reference"):
        pass
    callback, state = PeakMemoryCallback(), SimpleNamespace(is_world_process_zero=True, global_step=1)
    callback.on_train_begin(None, state, None)
    first, second, summary = {"loss": 0.69}, {"loss": 0.68}, {"train_loss": 0.68}
    for logs in (first, second, summary):
        callback.on_log(None, state, None, logs=logs)
    assert {"memory/reference/peak_rss_mb/rank0", "memory/reference/peak_rss_above_start_mb/rank0",
            "memory/peak_rss_mb/rank0"} <= set(first)
    assert not any(k.startswith("memory/reference/") for k in second) and "memory/peak_rss_mb/rank0" in second
    assert summary == {"train_loss": 0.68}
    assert first["memory/peak_rss_mb/rank0"] > 0


def build_random_llama(path: Path, hidden: int = 1536, layers: int = 16) -> int:
    """A random Llama (default: 606M parameters) saved as one safetensors file; returns the count.

    Few, wide layers (h 1536, 16 layers): ZeRO-3 keeps ~4 MB of bookkeeping per decoder layer on
    each rank after the first forward, and gathers one module's weights at a time (one 38 MB
    matrix here), both small next to half the model. Weights ~N(0, 0.1)
    so that log-probs depend on them (N(0, 0.02) is close to uniform over the vocabulary)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, max_position_embeddings=128,
                         tie_word_embeddings=False, initializer_range=0.1)
    torch.manual_seed(1234)
    model = LlamaForCausalLM(config)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(path)
    del model
    return n


@pytest.mark.slow
def test_zero3_reference_pass_equals_unsharded_with_half_the_memory(tmp_path):
    import gc
    import math

    model_dir = tmp_path / "llama606m"
    n_params = build_random_llama(model_dir)
    gc.collect()
    assert n_params >= 300_000_000
    env = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20), "OMP_NUM_THREADS": "1"}  # see the module docstring
    probe = ["-m", "tests.scale.zero3_reference_probe"]
    run([sys.executable, *probe, "plain", str(model_dir), str(tmp_path / "plain.json")], timeout=1800, env=env)
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *probe, "zero3",
         str(model_dir), str(tmp_path / "zero3.json")], timeout=2400, env=env)
    plain, zero3 = (json.loads((tmp_path / f"{v}.json").read_text()) for v in ("plain", "zero3"))

    assert zero3["world"] == 2 and zero3["cache_files"] == plain["cache_files"], "the same cache file"
    assert plain["values"].keys() == zero3["values"].keys() and len(plain["values"]) == 12
    worst = max(abs(a - b) / abs(a) for k in plain["values"] for a, b in zip(plain["values"][k], zero3["values"][k]))
    # the weights matter: a near-uniform model would give -len * ln(vocab), and so would any bug that
    # scored with weights that average out; these differ from that by far more than the tolerance
    examples = {e["index"]: e for e in synthetic_examples(512)}
    off_uniform = min(abs(v + len(examples[int(k)][side]) * math.log(512)) / (len(examples[int(k)][side]) * math.log(512))
                      for k, pair in plain["values"].items() for v, side in zip(pair, ("chosen_ids", "rejected_ids")))
    base = plain["memory"]["memory/reference/peak_rss_above_start_mb/rank0"]
    ranks = [zero3["memory"][f"memory/reference/peak_rss_above_start_mb/rank{r}"] for r in (0, 1)]
    print(f"\nmodel: {n_params / 1e6:.0f}M parameters, {n_params * 4 / 2**20:.0f} MB in float32")
    print(f"log-probs: {len(plain['values'])} pairs, worst relative difference ZeRO-3 vs unsharded {worst:.2e}")
    print(f"peak RSS added by the pass, unsharded: {base:.0f} MB "
          f"(absolute {plain['memory']['memory/reference/peak_rss_mb/rank0']:.0f} MB)")
    for r, mb in enumerate(ranks):
        print(f"peak RSS added by the pass, ZeRO-3 rank {r}: {mb:.0f} MB = {mb / base:.3f}x "
              f"(absolute {zero3['memory'][f'memory/reference/peak_rss_mb/rank{r}']:.0f} MB)")
    assert worst <= 1e-5 and off_uniform > 0.01
    assert all(math.isfinite(v) for pair in plain["values"].values() for v in pair)
    assert all(mb <= 0.6 * base for mb in ranks), (ranks, base)
    assert base >= 0.9 * n_params * 4 / 2**20, "the unsharded pass holds the whole float32 model"


@pytest.mark.slow
def test_zero3_offload_reference_pass_equals_unsharded(tmp_path):
    """``deepspeed=zero3_offload`` (weights partitioned in CPU RAM): same numbers, same cache file;
    a 4.5M-parameter Llama, ~2 min."""
    model_dir = tmp_path / "llama4m"
    build_random_llama(model_dir, hidden=256, layers=4)
    probe = ["-m", "tests.scale.zero3_reference_probe"]
    run([sys.executable, *probe, "plain", str(model_dir), str(tmp_path / "plain.json")])
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *probe,
         "zero3_offload", str(model_dir), str(tmp_path / "offload.json")])
    plain, offload = (json.loads((tmp_path / f"{v}.json").read_text()) for v in ("plain", "offload"))
    assert offload["world"] == 2 and offload["cache_files"] == plain["cache_files"]
    assert plain["values"].keys() == offload["values"].keys()
    for k, pair in plain["values"].items():
        for a, b in zip(pair, offload["values"][k]):
            assert abs(a - b) <= 1e-5 * abs(a)
    assert {f"memory/reference/peak_rss_mb/rank{r}" for r in (0, 1)} <= set(offload["memory"])
