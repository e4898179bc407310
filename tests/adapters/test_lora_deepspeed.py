"""adapter=lora under DeepSpeed on 2 CPU ranks (gloo), the tiny GPT-2: ZeRO-2 started by
prefexp (trainer.devices=2), ZeRO-3 by torchrun. Slow (two 2-rank launches, minutes on 2 cores).

Both save the full adapter (ZeRO-3 gathers the partitioned A and B at save), start at ln 2 (the
reference is the base, cached before DeepSpeed wraps anything) and, the same data and seed, end
with the same adapter: the sharding must not change the maths (fp32; the only difference is the
order of the all-reduce sums, a few ulps of the ~1e-4 entries of B).
"""
from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from tests.scale.conftest import TINY, TINY_DATA, TINY_MODEL, read_jsonl, run, train_cmd

pytestmark = pytest.mark.slow
DS = ["model.dtype=float32", "trainer.per_device_batch_size=4", "trainer.logging_steps=1", "adapter=lora"]


def test_lora_zero2_and_zero3_train_the_same_adapter(tmp_path):
    if not (TINY_MODEL / "config.json").exists() or not TINY_DATA.exists():
        pytest.skip("../shared/data (tiny-gpt2, UltraFeedback slice) is not beside the repo")
    from safetensors.torch import load_file

    cache = tmp_path / "cache"
    z2, z3 = tmp_path / "z2", tmp_path / "z3"
    run(train_cmd(*TINY, *DS, "deepspeed=zero2", "trainer.devices=2", f"paths.cache_dir={cache}", f"hydra.run.dir={z2}"),
        timeout=900)
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "prefexp.train",
         *TINY, *DS, "deepspeed=zero3", f"paths.cache_dir={cache}", f"hydra.run.dir={z3}"], timeout=900)
    adapters = []
    for run_dir in (z2, z3):
        rows = read_jsonl(run_dir / "metrics.jsonl")
        assert [r["step"] for r in rows] == [1, 2]
        assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
        assert "trainable parameters: 256 of 102,970" in (run_dir / "train.log").read_text()
        assert json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["adapter"]["kind"] == "lora"
        adapters.append(load_file(run_dir / "checkpoint" / "adapter_model.safetensors"))
    assert adapters[0].keys() == adapters[1].keys() and len(adapters[0]) == 4
    for key in adapters[0]:
        assert adapters[0][key].shape == adapters[1][key].shape  # ZeRO-3 saved the gathered tensors
        torch.testing.assert_close(adapters[0][key], adapters[1][key], rtol=1e-4, atol=1e-7)
    assert all(adapters[0][k].abs().sum() > 0 for k in adapters[0] if "lora_B" in k)
