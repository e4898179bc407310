"""Fused head vs full logits under ZeRO-3 on 2 CPU ranks, for ``test_fused_head_zero3.py``.

    python -m torch.distributed.run --standalone --nproc-per-node 2 \\
        -m tests.scale.fused_head_zero3_probe OUT.json ARCH [ARCH ...]

For each tiny architecture (``tests.perf.tiny_causal_lms``, same seed on every rank) an
unpartitioned copy is kept and the model is wrapped in a ZeRO-3 engine (weights partitioned by
``deepspeed.initialize``, SGD at lr 0: the weights never move). The ranks score different pairs
(rank 0 three, rank 1 two: different numbers of response rows, so the fused head's chunk counts
differ between ranks). Each rank, per head: log-probs with gradients (``engine.backward``, full
gradients gathered with ``safe_get_full_grad``) and without (``torch.no_grad``, the reference
pass's ``GatheredParameters`` path); then the reference pass itself (``zero3_shard_logps``) with
uneven shards. Rank 0 writes the worst differences, fused vs full logits
under ZeRO-3 and fused under ZeRO-3 vs the unpartitioned copy (gradients: the mean over ranks).
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path


def zero3_config(world: int) -> dict:
    """conf/deepspeed/zero3.yaml with the "auto"s filled as transformers fills them for a width of
    32 (so small tensors persist, the head is partitioned), and a client optimizer allowed."""
    from tests.scale.zero3_reference_probe import training_zero3_config

    config = training_zero3_config()
    h = 32
    config.update(train_batch_size=world, bf16={"enabled": False}, fp16={"enabled": False},
                  zero_allow_untested_optimizer=True)
    config["zero_optimization"].update(reduce_bucket_size=h * h, stage3_prefetch_bucket_size=int(0.9 * h * h),
                                       stage3_param_persistence_threshold=10 * h)
    return config


def reference_pass_rows(model_dir: Path, rank: int, world: int) -> list[dict]:
    """``zero3_shard_logps`` on 3 pairs in batches of 1: rank 0 scores 2, rank 1 one and runs one
    dummy batch (through the fused head too, or the ranks' gathers would not match). Worst
    difference from the unpartitioned pass over this rank's shard."""
    import torch
    import torch.distributed as dist

    from prefexp.engine.reference import compute_reference_logps
    from prefexp.engine.zero3_reference import zero3_sharding, zero3_shard_logps
    from tests.perf.test_logps_parity import EXAMPLES
    from tests.perf.tiny_causal_lms import build

    from .zero3_reference_probe import training_zero3_config

    model = build("gpt2")
    if rank == 0:
        model.save_pretrained(model_dir)
    dist.barrier()
    sharding = zero3_sharding(True, training_zero3_config(), "float32", False)
    got = zero3_shard_logps(sharding, str(model_dir), EXAMPLES[:3], rank, world, 0, 1, "fp32")
    want = compute_reference_logps(model, EXAMPLES[:3][rank::world], 0, 1)
    worst = max(abs(a - b) / (1 + abs(b)) for k in want for a, b in zip(got[k], want[k]))
    rows = [None] * world
    dist.all_gather_object(rows, {"pairs": sorted(got), "worst": worst})
    return rows


def main() -> None:
    import deepspeed
    import torch
    import torch.distributed as dist
    from deepspeed.utils import safe_get_full_grad

    from prefexp.engine.batching import PairCollator
    from prefexp.engine.fused_head import CHECKED, linear_head
    from prefexp.engine.logps import _unwrap, forward_logps
    from tests.perf.test_logps_parity import EXAMPLES
    from tests.perf.tiny_causal_lms import build

    out_path, archs = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    rank, world = dist.get_rank(), dist.get_world_size()
    batch = PairCollator(pad_token_id=0)(EXAMPLES[:3] if rank == 0 else EXAMPLES[3:])
    config = zero3_config(world)
    weights = torch.linspace(0.5, 1.5, batch["input_ids"].shape[0])
    report = {}
    for arch in archs:
        model = build(arch)
        plain = copy.deepcopy(model)
        engine, *_ = deepspeed.initialize(model=model, config=config,
                                          optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
        spec = linear_head(_unwrap(engine))
        assert spec is not None and spec.sharded, arch
        names = [n for n, _ in engine.module.named_parameters()]
        got = {}
        for step in range(2):  # step 2 runs on ZeRO-3's recorded module trace (prefetching)
            for head in ("fused", "logits"):
                logps, _ = forward_logps(engine, batch, head=head)
                engine.backward((logps * weights).sum())
                grads = {n: safe_get_full_grad(p).clone() for n, p in engine.module.named_parameters()}
                engine.step()  # lr 0: clears the gradients, weights unchanged
                with torch.no_grad():
                    nograd, _ = forward_logps(engine, batch, head=head)
                got[head, step] = (logps.detach(), nograd, grads)
        plain_logps, _ = forward_logps(plain, batch, head="logits")
        (plain_logps * weights).sum().backward()
        plain_grads = {}
        for n, p in plain.named_parameters():
            g = p.grad.clone()
            dist.all_reduce(g)
            plain_grads[n] = g / world

        def worst(a, b):  # max |a - b| / (1 + |b|): relative for large values, absolute near 0
            return float(((a - b).abs() / (1 + b.abs())).max())

        f_logps, f_nograd, f_grads = got["fused", 1]
        l_logps, l_nograd, l_grads = got["logits", 1]
        row = {"logps_fused_vs_logits": worst(f_logps, l_logps),
               "nograd_fused_vs_logits": worst(f_nograd, l_nograd),
               "nograd_vs_grad": worst(f_nograd, f_logps),
               "step2_vs_step1": worst(f_logps, got["fused", 0][0]),
               "logps_fused_vs_unpartitioned": worst(f_logps, plain_logps.detach()),
               "grads_fused_vs_logits": max(worst(f_grads[n], l_grads[n]) for n in names),
               "grads_fused_vs_unpartitioned": max(worst(f_grads[n], plain_grads[n]) for n in names),
               "checked": bool(CHECKED[engine.module]),
               "grad_norm": float(sum(f_grads[n].norm() ** 2 for n in names) ** 0.5),
               "logps": f_logps.tolist()}
        rows = [None] * world
        dist.all_gather_object(rows, row)
        report[arch] = rows
        engine.destroy()
    report["reference_pass"] = reference_pass_rows(Path(out_path).parent / "gpt2", rank, world)
    if rank == 0:
        with open(out_path, "w") as fh:
            json.dump(report, fh, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
