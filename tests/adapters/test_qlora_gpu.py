"""adapter=qlora on CUDA: a 4-bit NF4 base (bitsandbytes) with LoRA on every linear layer.

Hand-derived count (sandbox Llama: hidden 64, MLP 256, 2 layers, r = 16, all-linear = q, k, v, o,
gate, up, down; lm_head excluded by peft): per layer 4 x (16*64 + 64*16) + 3 x (16*64 + 256*16)
= 8,192 + 15,360 = 23,552; 2 layers: 47,104. The reference is the same 4-bit base (adapter off),
cached in its own folder, so at step 1 the DPO loss is ln 2 up to bf16 compute.
"""
from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from tests.helpers import read_jsonl, run_train

pytestmark = pytest.mark.gpu


def test_qlora_trains_a_4bit_base(tmp_path):
    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("adapter=qlora needs CUDA and bitsandbytes (pip install -e '.[qlora]')")
    run_dir, cache = tmp_path / "qlora", tmp_path / "cache"
    run_train(run_dir, "adapter=qlora", "loss=dpo", "router=none", "curriculum=none", "trainer.max_steps=3",
              "trainer.logging_steps=1", "logger=none", f"paths.cache_dir={cache}", "dataset.sandbox.num_prompts=400",
              "model.sandbox.sft_steps=80", "model.sandbox.num_prompts=400")
    assert "trainable parameters: 47,104 of" in (run_dir / "train.log").read_text()
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=5e-3)  # bf16 compute: eps 7.8e-3 on log-ratios * beta
    assert list((cache / "qlora-nf4-dq-bfloat16" / "reference_logps").glob("*.json")), "4-bit reference cache"
    manifest = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())
    assert manifest["adapter"]["kind"] == "qlora" and manifest["adapter"]["trainable_parameters"] == 47104
    assert (run_dir / "checkpoint" / "adapter_model.safetensors").is_file()
