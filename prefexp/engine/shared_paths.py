"""Which of the job's folders every node sees, checked once at the start of a multi-node job.

The run dir must be one folder for all ranks (checkpoint shards from every rank, one metrics file);
the cache dir may be shared (``paths.cache_shared=true``, the default: every entry is built once for
the job) or node-local scratch (``false``: each node's local rank 0 builds and writes the entries its
node reads). Nothing on a filesystem tells which it is, so rank 0 writes a marker file with a fresh
token into both folders, and every rank says whether it sees it. A run dir some node does not see,
or a cache dir declared shared that is not, ends the job with one ``error:`` line before any model
loads; otherwise rank 0 logs what was found and, for a node-local cache, that each node builds its own.
"""
from __future__ import annotations

import logging
import socket
import uuid
from pathlib import Path

from ..errors import InputError
from . import distributed

log = logging.getLogger(__name__)

MARKER = ".prefexp-node-check-"


def check_shared_paths(run_dir: Path, cache_dir: Path, cache_shared: bool) -> None:
    """On a job over several nodes (a no-op otherwise): raise :class:`InputError` on every rank for a
    run dir or a declared-shared cache dir that a node does not see; set who writes the cache."""
    if not distributed.spans_nodes():
        return
    distributed.init_process_group()
    token = distributed.gathered(uuid.uuid4().hex if distributed.is_main_process() else None)[0]
    folders = {"run dir": Path(run_dir), "cache dir": Path(cache_dir)}
    markers = {name: folder / f"{MARKER}{token}" for name, folder in folders.items()}
    if distributed.is_main_process():
        for marker in markers.values():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(token)
    distributed.barrier()
    seen = {name: marker.is_file() for name, marker in markers.items()}
    views = distributed.gathered({"rank": distributed.rank(), "node": distributed.node_rank(),
                                  "host": socket.gethostname(), **seen})
    distributed.barrier()  # every rank has looked before the markers go
    if distributed.is_main_process():
        for marker in markers.values():
            marker.unlink(missing_ok=True)
    blind = {name: [v for v in views if not v[name]] for name in folders}
    if blind["run dir"]:
        raise InputError(f"hydra.run.dir={run_dir} is not one folder for every node: {_who(blind['run dir'])} "
                         f"cannot see a file rank 0 wrote there; put the run dir on a filesystem all nodes mount")
    node_local = bool(blind["cache dir"])
    if node_local and cache_shared:
        raise InputError(f"paths.cache_dir={cache_dir} is not shared between nodes: {_who(blind['cache dir'])} "
                         f"cannot see a file rank 0 wrote there; put it on a filesystem all nodes mount, or pass "
                         f"paths.cache_shared=false (each node then builds its own cache entries)")
    distributed.set_node_local_cache(node_local)
    nodes = len({v["node"] for v in views})
    if node_local:
        log.info("paths.cache_dir=%s is node-local (%s cannot see the copy on rank 0's node): each of the %d nodes "
                 "builds its own cache entries once (sandbox model, tokens, reward and reference caches), "
                 "written by its local rank 0", cache_dir, _who(blind["cache dir"]), nodes)
    else:
        log.info("run dir and paths.cache_dir=%s are shared by all %d nodes: each cache entry is built once for "
                 "the job", cache_dir, nodes)


def _who(views: list[dict]) -> str:
    return ", ".join(f"rank {v['rank']} (node {v['node']}, host {v['host']})" for v in views)
