"""DeepSpeed ZeRO-2 and ZeRO-3 for real: two gloo ranks on CPU, the tiny GPT-2, 2 steps each.

At step 1 the policy equals the reference (precomputed before DeepSpeed wraps anything), so the
first logged DPO-branch loss is ln 2 = 0.693147 whatever the sharding. Both runs write one run
dir, with metrics logged once (rank 0), a checkpoint, its manifest and the resolved ds_config.json.
The ZeRO-2 run is started by `trainer.devices=2` (prefexp starts its ranks), the ZeRO-3 run by an
external `torchrun`, the documented alternative; the `deepspeed` launcher form is a slow test.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from prefexp.cachefs import read_checked_json

from .conftest import read_jsonl, run, train_cmd

DS = ["model.dtype=float32", "trainer.per_device_batch_size=4", "trainer.logging_steps=1"]  # fp16 fails on CPU


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One reference cache for the module: ZeRO-2 computes it over 2 ranks, ZeRO-3 hits it."""
    return tmp_path_factory.mktemp("cache")


def check_run(run_dir: Path, stage: int, world: int, micro: int = 4) -> None:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2], "each step logged once (rank 0 only)"
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert rows[0]["throughput/tokens_per_second"] > 0
    manifest = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())
    assert manifest["step"] == 2
    assert (run_dir / "checkpoint" / "model.safetensors").exists()
    ds = json.loads((run_dir / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["train_micro_batch_size_per_gpu"] == micro  # interpolated from trainer.per_device_batch_size
    assert ds["train_batch_size"] == micro * world  # filled by TrainingArguments: both ranks took part
    assert ds["bf16"]["enabled"] is False and ds["fp16"]["enabled"] is False  # from trainer.precision=fp32


def test_zero2_two_ranks_from_one_command(tiny, tmp_path, cache_dir):
    runs = tmp_path / "runs"
    run_dir = runs / "0_deepspeed=zero2,tau=0.5"  # a sweep job's kind of name: '=' and ',' reach the ranks quoted
    run(train_cmd(*tiny, *DS, "deepspeed=zero2", "trainer.devices=2", f"paths.cache_dir={cache_dir}",
                  f"hydra.run.dir='{run_dir}'"))
    assert [p.name for p in runs.iterdir()] == [run_dir.name], "both ranks share the one run dir"
    check_run(run_dir, stage=2, world=2)
    assert len(list(tmp_path.rglob("metrics.jsonl"))) == 1 and len(list(tmp_path.rglob("manifest.json"))) == 1
    rank_logs = sorted(p.parent.name for p in (run_dir / ".launch").rglob("stderr.log"))
    assert rank_logs == ["0", "1"], "two ranks were started"
    caches = list((cache_dir / "reference_logps").glob("*.json"))
    # the pairs 2 steps x 2 ranks x 4 reach (pipeline/trained_pairs.py), scored in 2 shards and gathered
    assert len(caches) == 1 and len(read_checked_json(caches[0])) == 16, "reference log-probs gathered from 2 shards"


def test_zero3_two_ranks_under_torchrun(tiny, tmp_path):
    """ZeRO-3 partitions the policy at from_pretrained; the saved checkpoint is the full model."""
    from transformers import AutoModelForCausalLM

    from .conftest import TINY_MODEL

    run_dir = tmp_path / "zero3"
    # a cache of its own: the reference pass itself runs partitioned (engine/zero3_reference.py),
    # not read back from the ZeRO-2 test's cache; check_run's first loss ln 2 then says it matches
    own_cache = tmp_path / "zero3-cache"
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "prefexp.train",
         *tiny, *DS, "deepspeed=zero3", f"paths.cache_dir={own_cache}", f"hydra.run.dir={run_dir}"])
    check_run(run_dir, stage=3, world=2)
    assert len(list((own_cache / "reference_logps").glob("*.json"))) == 1, "the partitioned pass wrote the cache"
    trained = dict(AutoModelForCausalLM.from_pretrained(run_dir / "checkpoint").named_parameters())
    initial = dict(AutoModelForCausalLM.from_pretrained(TINY_MODEL).named_parameters())
    assert trained.keys() == initial.keys()
    assert all(trained[k].shape == initial[k].shape for k in trained), "ZeRO-3 gathered full weights on save"
    assert any(not (trained[k].float() - initial[k].float()).abs().max() == 0 for k in trained), "weights changed"


@pytest.mark.slow
def test_zero2_under_the_deepspeed_launcher(tiny, tmp_path, cache_dir):
    """`deepspeed --num_gpus 2 --module prefexp.train ...` appends --local_rank=N, which train.py strips."""
    import shutil

    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("deepspeed launcher not installed")
    run_dir = tmp_path / "ds_launcher"
    run([launcher, "--num_gpus", "2", "--master_port", "29731", "--module", "prefexp.train", *tiny, *DS,
         "deepspeed=zero2", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"])
    check_run(run_dir, stage=2, world=2)
