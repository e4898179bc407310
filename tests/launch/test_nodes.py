"""prefexp.launch.nodes: the job's nodes from SLURM or from trainer.nodes + NODE_RANK, and the
one-line refusals when they do not fit (the 2-"node" runs themselves: tests/scale/test_multinode.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from prefexp.engine import distributed
from prefexp.errors import InputError
from prefexp.launch.nodes import Nodes, enter_node, job_nodes, torchrun_node_args
from tests.helpers import REPO

ENV = ("SLURM_NNODES", "SLURM_JOB_NUM_NODES", "SLURM_NODEID", "NODE_RANK", "PREFEXP_NODE_RANK", "PREFEXP_RDZV_PORT",
       "RANK", "WORLD_SIZE", "GROUP_RANK", "LOCAL_WORLD_SIZE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in ENV:
        monkeypatch.delenv(key, raising=False)


def test_one_node_by_default():
    assert job_nodes(1, None) == Nodes() and not Nodes().multi
    assert torchrun_node_args(Nodes()) == ["--standalone"]
    assert Nodes().where == "" and Nodes(2, 1, "h", 1).where == " on node 1 of 2"  # for the launchers' lines


def test_by_hand_nodes_rank_and_endpoint(monkeypatch):
    monkeypatch.setenv("NODE_RANK", "1")
    nodes = job_nodes(2, "node001:29555")
    assert nodes == Nodes(2, 1, "node001", 29555)
    assert torchrun_node_args(nodes) == ["--nnodes=2", "--node-rank=1", "--master-addr=node001", "--master-port=29555"]


@pytest.mark.parametrize("node_rank, needle", [(None, "NODE_RANK=(unset)"), ("2", "NODE_RANK=2"), ("x", "NODE_RANK=x")])
def test_by_hand_needs_a_node_rank_below_nodes(monkeypatch, node_rank, needle):
    if node_rank is not None:
        monkeypatch.setenv("NODE_RANK", node_rank)
    with pytest.raises(InputError, match="set NODE_RANK to 0..1") as err:
        job_nodes(2, "h:1")
    assert needle in str(err.value)


def test_by_hand_needs_an_endpoint(monkeypatch):
    monkeypatch.setenv("NODE_RANK", "0")
    with pytest.raises(InputError, match=r"trainer.nodes=2 needs trainer.rdzv_endpoint=<node 0 host>:<free port>"):
        job_nodes(2, None)


def test_slurm_allocation_gives_nodes_rank_and_first_host(monkeypatch):
    monkeypatch.setenv("SLURM_NNODES", "4")
    monkeypatch.setenv("SLURM_NODEID", "3")
    monkeypatch.setenv("PREFEXP_RDZV_PORT", "29123")
    monkeypatch.setattr("prefexp.launch.nodes.first_slurm_host", lambda: "gpu017")  # no SLURM here
    assert job_nodes(1, None) == Nodes(4, 3, "gpu017", 29123)
    assert job_nodes(4, "login:1") == Nodes(4, 3, "login", 1), "an explicit endpoint wins"
    with pytest.raises(InputError, match="trainer.nodes=2 but this SLURM allocation has 4 nodes"):
        job_nodes(2, None)


def test_only_node_0s_launcher_is_the_main_process(monkeypatch):
    monkeypatch.setenv("PREFEXP_NODE_RANK", "0")  # restored after the test (enter_node sets it)
    enter_node(Nodes(2, 1, "h", 1))
    assert distributed.node_rank() == 1 and not distributed.is_main_process()
    enter_node(Nodes(2, 0, "h", 1))
    assert distributed.is_main_process()
    # inside a rank torchrun's GROUP_RANK and the global RANK decide, not the launcher's variable
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("GROUP_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setenv("PREFEXP_NODE_RANK", "1")
    assert distributed.is_main_process() and distributed.spans_nodes()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert not distributed.spans_nodes()


def test_cache_writers_are_each_nodes_local_rank_0_on_a_node_local_cache(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("GROUP_RANK", "1")
    try:
        assert not distributed.writes_cache()
        distributed.set_node_local_cache(True)
        assert distributed.writes_cache()
    finally:
        distributed.set_node_local_cache(False)


def refusal(*overrides: str, node_rank: str = "0") -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k not in ENV}
    return subprocess.run([sys.executable, "-m", "prefexp.train", "logger=none", "evaluate=[]", *overrides],
                          cwd=REPO, env={**env, "NODE_RANK": node_rank}, capture_output=True, text=True, timeout=300)


def test_launcher_refusals_are_one_line_before_anything_loads(tmp_path):
    no_dir = refusal("trainer.nodes=2", "trainer.rdzv_endpoint=127.0.0.1:29555")
    assert no_dir.returncode == 2
    assert no_dir.stderr.strip().splitlines()[-1] == (
        "error: 2 nodes need one shared run dir: pass hydra.run.dir=<dir on a shared filesystem> (the same on every "
        "node; a timestamped default would differ per node)")
    bad = refusal("trainer.nodes=2", "trainer.rdzv_endpoint=127.0.0.1", f"hydra.run.dir={tmp_path / 'r'}")
    assert bad.returncode == 2 and "trainer.rdzv_endpoint='127.0.0.1' must be host:port" in bad.stderr
    out_of_range = refusal("trainer.nodes=2", "trainer.rdzv_endpoint=127.0.0.1:29555", f"hydra.run.dir={tmp_path / 'r'}",
                           node_rank="5")
    assert out_of_range.returncode == 2 and "NODE_RANK=5; set NODE_RANK to 0..1" in out_of_range.stderr
    assert not (tmp_path / "r" / "checkpoints").exists()
