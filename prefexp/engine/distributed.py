"""Ranks, the process group and what must happen once per job under a multi-rank launch.

Every rank of a launch (``trainer.devices=N``, ``torchrun`` or ``deepspeed``) runs the same
pipeline in the same run dir. This module answers the questions the pipeline asks about that:
which rank am I, which device is mine, who writes files (rank 0 only), and how the reference
log-probs are precomputed once for all ranks before the Trainer or DeepSpeed wraps anything:
each rank scores a strided shard of the pairs (with the plain model on its own device, or under
ZeRO-3 with the model partitioned over the ranks), the shards are all-gathered, rank 0 writes
the cache and everyone continues with the same numbers.
"""
from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..config import layout

if TYPE_CHECKING:
    from .zero3_reference import Zero3Sharding

log = logging.getLogger(__name__)

# Ranks wait for each other around the reference precompute and the first DeepSpeed collectives;
# the default 10-30 min collective timeout is too short for a 7-8B reference pass over 60k pairs.
PROCESS_GROUP_TIMEOUT = timedelta(hours=3)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


# A launcher's node rank (set by prefexp.launch.nodes.enter_node; ranks have torchrun's GROUP_RANK).
NODE_RANK_ENV = "PREFEXP_NODE_RANK"


def node_rank() -> int:
    """This process's node of the job: torchrun's GROUP_RANK in a rank, else the launcher's node
    (0 on one node)."""
    if in_launch():
        return int(os.environ.get("GROUP_RANK", "0"))
    return int(os.environ.get(NODE_RANK_ENV, "0"))


def spans_nodes() -> bool:
    """A rank of a job whose ranks are not all on this node."""
    return in_launch() and int(os.environ.get("LOCAL_WORLD_SIZE", world_size())) < world_size()


def is_main_process() -> bool:
    """Rank 0 of the job (in a launcher: node 0's launcher): the only writer of logs, plans,
    checkpoints and manifests."""
    return rank() == 0 and node_rank() == 0


# Who writes cache entries (paths.cache_dir): rank 0 of the job, or with a node-local cache dir
# (paths.cache_shared=false on several nodes; prefexp.engine.shared_paths) each node's local rank 0.
_node_local_cache = False


def set_node_local_cache(node_local: bool) -> None:
    global _node_local_cache
    _node_local_cache = node_local


def writes_cache() -> bool:
    """This rank writes missing cache entries (the others read them after :func:`cache_writers_first`)."""
    return local_rank() == 0 if _node_local_cache else is_main_process()


def in_launch() -> bool:
    """True inside a rank started by torchrun / deepspeed / prefexp.launch (they all set these)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def local_device():
    """This rank's device: cuda:<LOCAL_RANK> when CUDA exists, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    return torch.device("cpu")


def cpu_ranks() -> bool:
    """A launch of several processes on a machine without CUDA: Accelerate only treats it as
    distributed (gloo DDP / DeepSpeed on CPU) with TrainingArguments(use_cpu=True)."""
    import torch

    return in_launch() and not torch.cuda.is_available()


def init_process_group() -> bool:
    """Join the job's process group (nccl on GPUs, gloo on CPU) if this is a multi-rank launch.

    Safe to call twice; the Trainer, Accelerate and DeepSpeed later reuse the group instead of
    creating their own. Returns whether a group exists.
    """
    import torch
    import torch.distributed as dist

    if world_size() <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_device())
        dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
        log.info("process group: rank %d of %d, backend %s", rank(), world_size(), backend)
    return True


def destroy_process_group() -> None:
    """Leave the group at the end of a rank (an exit without it can abort with SIGABRT)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. builds a cached model), then the others (who find it cached)."""
    grouped = init_process_group()
    if grouped and not is_main_process():
        barrier()
    try:
        yield
    finally:
        if grouped and is_main_process():
            barrier()


@contextmanager
def cache_writers_first():
    """The cache writers (:func:`writes_cache`) run the block first, e.g. build a missing sandbox
    model or token entry; then the other ranks, who find it in the cache dir they see."""
    grouped = init_process_group()
    if grouped and not writes_cache():
        barrier()
    try:
        yield
    finally:
        if grouped and writes_cache():
            barrier()


def quiet_replica_logging() -> None:
    """Ranks > 0: warnings and errors to the console only; the run dir's train.log is rank 0's."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.WARNING)


def shared_reference_logps(model_loader: Callable, model_dir: str, examples: Sequence[dict], pad_token_id: int,
                           batch_size: int, cache_dir: Path, precision: str = "fp32",
                           zero3: "Zero3Sharding | None" = None) -> dict[int, tuple[float, float]]:
    """Reference log-probs for every example, the same on every rank; cached on disk.

    The cache is used only if every rank sees it (a node without the shared cache dir would
    otherwise wait forever); else rank r of N scores ``examples[r::N]``, the shards are
    all-gathered and rank 0 writes the cache file atomically. Without ``zero3`` (one rank, DDP,
    ZeRO-2) each rank scores with the plain, unpartitioned model on its device; with it (ZeRO-3)
    the model is partitioned over the ranks as for training (``prefexp.engine.zero3_reference``).
    Each rank's peak memory during the pass is logged (``prefexp.engine.memory``).
    """
    import torch

    from .memory import measured
    from ..cachefs import CacheCorrupt, quarantine, temp_path, write_checked_json
    from .reference import cached_reference_logps, compute_reference_logps, read_reference_logps, reference_cache_path

    device = local_device()
    if world_size() <= 1 and zero3 is None:  # one process: concurrent runs on one key compute it once
        with measured("the reference pass", "memory/reference"):
            return cached_reference_logps(lambda: model_loader().to(device), model_dir, examples, pad_token_id,
                                          batch_size, cache_dir, precision)
    path = reference_cache_path(model_dir, examples, cache_dir, precision)
    if world_size() > 1 or zero3 is not None:
        _join_for_reference(zero3 is not None)
    cached, problem = None, None
    try:
        cached = read_reference_logps(path, examples) if path.exists() else None
    except CacheCorrupt as err:  # every rank sees the same file; rank 0 moves it aside below
        problem = str(err)
    if all(gathered(cached is not None)):
        log.info("reference log-probs: cache hit %s", path)
        return cached

    with measured("the reference pass" + (" (ZeRO-3 partitioned)" if zero3 else ""), "memory/reference"):
        if zero3 is not None:
            from .zero3_reference import zero3_shard_logps

            values = zero3_shard_logps(zero3, model_dir, examples, rank(), world_size(), pad_token_id, batch_size,
                                       precision)
        else:
            shard = list(examples)[rank()::world_size()]
            model = model_loader().to(device)
            values = compute_reference_logps(model, shard, pad_token_id, batch_size, precision) if shard else {}
            del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    merged = {int(k): tuple(v) for part in gathered(values) for k, v in part.items()}
    if writes_cache():  # rank 0, or every node's local rank 0 with a node-local cache dir
        if problem and path.exists():
            quarantine(path, problem, "reference log-probs")
        tmp = temp_path(path)  # never half a cache: written aside, renamed into place
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checked_json(tmp, {str(k): list(v) for k, v in merged.items()})
        os.replace(tmp, path)
        log.info("reference log-probs: %d pairs over %d rank(s), cached at %s", len(merged), world_size(), path)
    barrier()
    return merged


def _join_for_reference(zero3: bool) -> None:
    """The process group (and, for ZeRO-3, DeepSpeed's comm layer on it, which zero.Init needs)."""
    init_process_group()
    if zero3:
        import deepspeed

        deepspeed.init_distributed(auto_mpi_discovery=False, timeout=PROCESS_GROUP_TIMEOUT)


def gathered(obj) -> list:
    """``obj`` of every rank (a one-item list without a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def deepspeed_dict(enabled: bool, config: dict) -> dict | None:
    """The resolved DeepSpeed JSON for TrainingArguments(deepspeed=...), or None when disabled."""
    return dict(config) if enabled else None


def prepare_deepspeed(args, run_dir: Path) -> Path | None:
    """Between TrainingArguments(deepspeed=...) and from_pretrained: join DeepSpeed's comm layer to
    the process group (ZeRO-3's from_pretrained partitions the weights over it) and write
    <run dir>/ds_config.json, the config as the Trainer will use it (batch, precision and clipping
    "auto"s filled; bucket sizes stay "auto" until the model is wrapped). None when DeepSpeed is off."""
    hf_config = getattr(args, "hf_deepspeed_config", None)
    if hf_config is None:
        return None
    import deepspeed

    init_process_group()
    deepspeed.init_distributed(auto_mpi_discovery=False, timeout=PROCESS_GROUP_TIMEOUT)
    if not is_main_process():
        return None
    path = run_dir / layout.DS_CONFIG
    path.write_text(json.dumps(_finite(hf_config.config), indent=2, sort_keys=True, default=str) + "\n")
    return path


def _finite(tree):
    """Drop non-finite numbers (Accelerate sets steps_per_print=inf), which strict JSON cannot hold."""
    import math

    if isinstance(tree, dict):
        return {k: _finite(v) for k, v in tree.items() if not (isinstance(v, float) and not math.isfinite(v))}
    if isinstance(tree, list):
        return [_finite(v) for v in tree]
    return tree
