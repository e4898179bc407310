"""Two "nodes" on one machine: two launches of ``python -m prefexp.train trainer.nodes=2`` with
NODE_RANK=0 / 1, one CPU rank each, joined by torchrun's static rendezvous on 127.0.0.1
(prefexp.launch.nodes), one shared run dir, and a cache dir that is shared or that each "node" has
for itself (PREFEXP_CACHE differs per launch, as a node-local scratch path would).

The tiny GPT-2 from ../shared/data under DeepSpeed ZeRO-2 and ZeRO-3: 2 nodes x 1 rank give the
weights of 1 node x 2 ranks (the same global batch of 8 pairs, the same gloo all-reduce of two
gradients: equal up to float32 summation order). A cache dir declared shared that is not ends both
launches with one error line before any model loads; declared node-local, each node builds its own
entries. A SIGKILLed rank on node 1 ends both nodes' launches with one error line each, and the same
two commands resume from the newest complete checkpoint to the uninterrupted run's weights.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefexp.engine.checkpoints import newest_complete_checkpoint

from .conftest import REPO, clean_env, read_jsonl, run, train_cmd

pytestmark = pytest.mark.slow

DS = ["model.dtype=float32", "trainer.per_device_batch_size=4", "trainer.logging_steps=1"]  # fp16 fails on CPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_nodes(run_dir: Path, caches: tuple[Path, Path], overrides: list[str], tag: str = "") -> list[subprocess.Popen]:
    """Node 1 first (it waits for node 0's rendezvous), then node 0; output to <run dir><tag>.node-K.log."""
    port = free_port()
    procs = []
    for node in (1, 0):
        env = clean_env({"NODE_RANK": str(node), "PREFEXP_CACHE": str(caches[node])})
        cmd = train_cmd(*overrides, "trainer.nodes=2", f"trainer.rdzv_endpoint=127.0.0.1:{port}",
                        f"hydra.run.dir={run_dir}")
        log = run_dir.parent / f"{run_dir.name}{tag}.node-{node}.log"
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT))
    return procs[::-1]  # [node 0, node 1]


def wait_all(procs: list[subprocess.Popen], timeout: float = 600) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    return codes


def node_log(run_dir: Path, node: int, tag: str = "") -> str:
    return (run_dir.parent / f"{run_dir.name}{tag}.node-{node}.log").read_text()


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "checkpoint" / "model.safetensors")


def assert_same_weights(a: dict, b: dict, initial: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    moved = max((a[k].float() - initial[k].float()).abs().max().item() for k in a if k in initial)
    assert moved > 1e-5, "training moved the weights (else equality says nothing)"
    for k in a:  # float32 weights; the two runs differ at most in the order of a 2-term gradient sum
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def initial() -> dict:
    from safetensors.torch import load_file

    from .conftest import TINY_MODEL

    return load_file(TINY_MODEL / "model.safetensors")


@pytest.mark.parametrize("stage", [2, 3])
def test_two_nodes_train_the_weights_of_one_node_with_two_ranks(tiny, tmp_path, initial, stage):
    cache = tmp_path / "cache"  # shared by both "nodes" and the one-node run
    one = tmp_path / "one-node"
    run(train_cmd(*tiny, *DS, f"deepspeed=zero{stage}", "trainer.devices=2", f"paths.cache_dir={cache}",
                  f"hydra.run.dir={one}"))
    two = tmp_path / "two-nodes"
    codes = wait_all(launch_nodes(two, (cache, cache), [*tiny, *DS, f"deepspeed=zero{stage}"]))
    assert codes == [0, 0], node_log(two, 0)[-3000:] + node_log(two, 1)[-3000:]
    assert_same_weights(weights(two), weights(one), initial)
    assert [r["step"] for r in read_jsonl(two / "metrics.jsonl")] == [1, 2], "one metrics file, rank 0 writes it"
    import json

    assert json.loads((two / "ds_config.json").read_text())["train_batch_size"] == 8, "2 nodes x 1 rank x 4 pairs"
    rank_logs = sorted(p.relative_to(two / ".launch").parts[0] for p in (two / ".launch").rglob("stderr.log"))
    assert rank_logs == ["node-0", "node-1"], "one rank on each node, each node's logs apart"
    log = (two / "train.log").read_text()
    assert "launching 1 rank(s) on node 0 of 2" in log and "on node 1 of 2" not in log, "train.log is node 0's"
    assert "shared by all 2 nodes" in log
    assert "run summary" in node_log(two, 0) and "run summary" not in node_log(two, 1), "node 0 ends with the answer"


def test_a_node_local_cache_is_refused_when_declared_shared_and_built_per_node_when_not(tiny, tmp_path):
    caches = (tmp_path / "scratch-node0", tmp_path / "scratch-node1")
    refused = tmp_path / "refused"
    codes = wait_all(launch_nodes(refused, caches, [*tiny, *DS, "deepspeed=zero2"]))
    assert codes == [2, 2]
    for node in (0, 1):
        lines = error_lines(node_log(refused, node))
        assert len(lines) == 1 and "is not shared between nodes" in lines[0] and "paths.cache_shared=false" in lines[0]
    assert not (refused / "checkpoint").exists() and not any(caches[1].glob("reference_logps/*")), "nothing loaded"

    local = tmp_path / "node-local"
    codes = wait_all(launch_nodes(local, caches, [*tiny, *DS, "deepspeed=zero2", "paths.cache_shared=false"]))
    assert codes == [0, 0], node_log(local, 0)[-3000:] + node_log(local, 1)[-3000:]
    for cache in caches:  # each node's local rank 0 wrote its node's entries
        assert len(list((cache / "reference_logps").glob("*.json"))) == 1
        assert len([p for p in (cache / "tokens").iterdir() if not p.name.startswith(".")]) == 1
    assert "is node-local" in (local / "train.log").read_text()


def test_a_killed_rank_on_node_1_ends_the_job_in_one_line_and_it_resumes(tiny, tmp_path, initial):
    import psutil

    cache = tmp_path / "cache"
    longer = [o for o in tiny if not o.startswith(("dataset.max_rows=", "trainer.max_steps="))]
    longer += [*DS, "deepspeed=zero2", "dataset.max_rows=256", "trainer.max_steps=12", "trainer.save_steps=2"]
    whole = tmp_path / "uninterrupted"
    assert wait_all(launch_nodes(whole, (cache, cache), longer)) == [0, 0], node_log(whole, 0)[-3000:]

    killed = tmp_path / "killed"
    procs = launch_nodes(killed, (cache, cache), longer)
    deadline = time.monotonic() + 300
    while newest_complete_checkpoint(killed / "checkpoints") is None:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), node_log(killed, 0)[-3000:]
        time.sleep(0.1)
    node1_ranks = [c for c in psutil.Process(procs[1].pid).children(recursive=True)
                   if "prefexp.train" in " ".join(c.cmdline()) and "torch.distributed.run" not in " ".join(c.cmdline())]
    assert len(node1_ranks) == 1
    node1_ranks[0].kill()
    codes = wait_all(procs, timeout=300)
    assert codes[0] != 0 and codes[1] != 0, "the whole job ended"
    for node in (0, 1):
        log = node_log(killed, node)
        assert log.rstrip().splitlines()[-1].startswith("error: "), log[-3000:]
        assert len(error_lines(log)) == 1, log[-3000:]
    assert "resume from checkpoint-" in error_lines(node_log(killed, 1))[0]
    assert not (killed / "checkpoint").exists()

    assert wait_all(launch_nodes(killed, (cache, cache), longer, ".resumed")) == [0, 0], node_log(killed, 0, ".resumed")
    assert "resuming from" in (killed / "train.log").read_text().lower()
    assert_same_weights(weights(killed), weights(whole), initial)
