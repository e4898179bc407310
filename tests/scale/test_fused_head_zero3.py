"""The fused LM head under ZeRO-3 on 2 CPU ranks equals the full-logits path and the unpartitioned model.

``fused_head_zero3_probe`` (torchrun, 2 gloo ranks) wraps tiny random models in a ZeRO-3 engine
(conf/deepspeed/zero3.yaml, the head's weight partitioned) and has the ranks score different pairs
(different numbers of response rows, so the ZeRO-3 gathers must not depend on them or the ranks
would hang). Checked, at the second step (on ZeRO-3's recorded trace), within 1e-5 relative
(float32): log-probs and full parameter gradients, fused vs full logits under ZeRO-3; the
no-gradient path (``GatheredParameters``, the reference pass's) vs the gradient path; and fused
under ZeRO-3 vs the unpartitioned model (gradients averaged over the ranks as ZeRO does); and the
reference pass under ZeRO-3 (``zero3_shard_logps``, a tiny GPT-2) with a rank that runs a dummy
batch equals the unpartitioned pass.
Default: GPT-2 (tied head) and Gemma-3 (soft-capped), ~20 s (mostly the 2 launches); slow: Llama and Qwen2.
"""
from __future__ import annotations

import json
import sys

import pytest

from .conftest import run

TOL = 1e-5


def check(tmp_path, archs):
    out = tmp_path / "zero3.json"
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "tests.scale.fused_head_zero3_probe", str(out), *archs], env={"OMP_NUM_THREADS": "1"})
    report = json.loads(out.read_text())
    shards = report.pop("reference_pass")
    assert [r["pairs"] for r in shards] == [[0, 2], [1]], "rank 1 ran a dummy batch"
    assert all(r["worst"] <= TOL for r in shards), shards
    assert sorted(report) == sorted(archs)
    for arch, ranks in report.items():
        assert len(ranks) == 2
        assert len(ranks[0]["logps"]) == 6 and len(ranks[1]["logps"]) == 4, "3 pairs on rank 0, 2 on rank 1"
        for rank, row in enumerate(ranks):
            assert row["checked"], (arch, rank, "the first-use check passed: the fused path ran")
            assert row["grad_norm"] > 1, (arch, rank, "gradients reached the parameters")
            for key in ("logps_fused_vs_logits", "nograd_fused_vs_logits", "nograd_vs_grad", "step2_vs_step1",
                        "logps_fused_vs_unpartitioned", "grads_fused_vs_logits", "grads_fused_vs_unpartitioned"):
                assert row[key] <= TOL, (arch, rank, key, row[key])


def test_fused_head_under_zero3_gpt2_and_gemma3(tmp_path):
    check(tmp_path, ["gpt2", "gemma3"])


@pytest.mark.slow
def test_fused_head_under_zero3_llama_and_qwen2(tmp_path):
    check(tmp_path, ["llama", "qwen2"])
