"""The nodes of a job: how many, which one this process runs on, where node 0 listens.

One code path for both ways onto several nodes:

* SLURM (``hydra/launcher=slurm hydra.launcher.nodes=N``, or ``srun`` by hand): the allocation says,
  through ``SLURM_NNODES``, ``SLURM_NODEID`` and the first host of ``SLURM_JOB_NODELIST``.
* By hand: ``trainer.nodes=N trainer.rdzv_endpoint=<node 0 host>:<port>`` on every node, each node's
  launch with ``NODE_RANK=0..N-1`` in its environment (and the same ``hydra.run.dir``).

Each node's ``python -m prefexp.train`` then starts its ``trainer.devices`` ranks with torchrun's
static rendezvous (``--nnodes --node-rank --master-addr --master-port``), so global rank 0 is node 0's
first rank. Node 0's launcher is the job's main process (it holds the run lock, records the config,
evaluates and prints the summary); the other nodes' launchers only start their ranks and wait.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from ..engine.distributed import NODE_RANK_ENV
from ..errors import InputError

DEFAULT_SLURM_PORT = "29400"


@dataclass(frozen=True)
class Nodes:
    count: int = 1
    rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def multi(self) -> bool:
        return self.count > 1

    @property
    def where(self) -> str:
        """" on node K of N" for messages on several nodes, else nothing."""
        return f" on node {self.rank} of {self.count}" if self.multi else ""


def job_nodes(nodes: int, rdzv_endpoint: str | None) -> Nodes:
    """The job's nodes from the SLURM allocation, else from trainer.nodes / rdzv_endpoint / NODE_RANK;
    :class:`InputError` (one line naming the key or variable and the fix) when they do not fit."""
    slurm_nodes = int(os.environ.get("SLURM_NNODES", os.environ.get("SLURM_JOB_NUM_NODES", "1")))
    if slurm_nodes > 1:
        if nodes > 1 and nodes != slurm_nodes:
            raise InputError(f"trainer.nodes={nodes} but this SLURM allocation has {slurm_nodes} nodes (SLURM_NNODES); "
                             f"drop trainer.nodes or submit with hydra.launcher.nodes={nodes}")
        endpoint = rdzv_endpoint or f"{first_slurm_host()}:{os.environ.get('PREFEXP_RDZV_PORT', DEFAULT_SLURM_PORT)}"
        count, rank = slurm_nodes, int(os.environ.get("SLURM_NODEID", "0"))
    elif nodes > 1:
        if rdzv_endpoint is None:
            raise InputError(f"trainer.nodes={nodes} needs trainer.rdzv_endpoint=<node 0 host>:<free port>, the same "
                             "on every node (outside SLURM, which gives it)")
        raw = os.environ.get("NODE_RANK", "")
        if not (raw.isdigit() and int(raw) < nodes):
            raise InputError(f"trainer.nodes={nodes}: NODE_RANK={raw or '(unset)'}; set NODE_RANK to 0..{nodes - 1} in "
                             f"each node's environment (0 on the node at trainer.rdzv_endpoint)")
        count, rank, endpoint = nodes, int(raw), rdzv_endpoint
    else:
        return Nodes()
    host, port = endpoint.rsplit(":", 1)
    return Nodes(count, rank, host, int(port))


def first_slurm_host() -> str:
    try:
        import submitit

        return submitit.JobEnvironment().hostnames[0]
    except Exception:  # noqa: BLE001 - not a submitit job: ask SLURM
        out = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
                             capture_output=True, text=True, check=True)
        return out.stdout.split()[0]


def enter_node(nodes: Nodes) -> None:
    """Record this launcher's node rank for the process (prefexp.engine.distributed.node_rank)."""
    os.environ[NODE_RANK_ENV] = str(nodes.rank)


def torchrun_node_args(nodes: Nodes) -> list[str]:
    if not nodes.multi:
        return ["--standalone"]  # c10d store on a free port: concurrent launches never clash
    return [f"--nnodes={nodes.count}", f"--node-rank={nodes.rank}", f"--master-addr={nodes.master_addr}",
            f"--master-port={nodes.master_port}"]
