"""One reference pass in a fresh process, for ``test_zero3_reference.py``: figures that belong to
the pass alone, not to whatever else a test process has held.

    python -m tests.scale.zero3_reference_probe plain MODEL_DIR OUT.json
    python -m torch.distributed.run --standalone --nproc-per-node 2 \\
        -m tests.scale.zero3_reference_probe zero3 MODEL_DIR OUT.json

Runs ``prefexp.engine.distributed.shared_reference_logps`` (the function the pipeline's reference
stage calls) on synthetic token ids, unsharded (``plain``, one process) or with the training's
``conf/deepspeed/zero3.yaml`` (``zero3``) or ``zero3_offload.yaml``, with a fresh cache dir beside OUT; rank 0 writes
OUT: the log-probs, every rank's peak-memory figures and the cache file's name.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAIRS = 12
BATCH = 4  # pairs per forward: 12 pairs over 2 ranks = 6 each = 2 batches per rank


def synthetic_examples(vocab: int, n: int = PAIRS, seed: int = 0) -> list[dict]:
    """Pairs of random token ids with prompt / response lengths that differ between pairs (so
    batches pad differently in the sharded and unsharded passes)."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def ids(k: int) -> list[int]:
        return torch.randint(1, vocab, (k,), generator=g).tolist()  # 0 is the pad token

    return [{"index": i, "prompt_ids": ids(6 + i % 5), "chosen_ids": ids(10 + i % 7),
             "rejected_ids": ids(8 + (3 * i) % 9)} for i in range(n)]


def training_zero3_config(option: str = "zero3") -> dict:
    """conf/deepspeed/<option>.yaml's DeepSpeed JSON with its trainer interpolations resolved."""
    from omegaconf import OmegaConf

    tree = OmegaConf.create({"trainer": {"per_device_batch_size": 1, "gradient_accumulation_steps": 1,
                                         "max_grad_norm": 1.0, "learning_rate": 1e-6, "weight_decay": 0.0},
                             "deepspeed": OmegaConf.load(REPO / "conf" / "deepspeed" / f"{option}.yaml")})
    return OmegaConf.to_container(tree, resolve=True)["deepspeed"]["config"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["plain", "zero3", "zero3_offload"])
    parser.add_argument("model_dir")
    parser.add_argument("out")
    a = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from prefexp.engine import distributed
    from prefexp.engine.memory import pending_figures
    from prefexp.engine.zero3_reference import zero3_sharding

    torch.set_num_threads(1)
    vocab = AutoConfig.from_pretrained(a.model_dir).vocab_size
    examples = synthetic_examples(vocab)
    cache = Path(a.out).parent / f"cache_{a.mode}"
    zero3 = None if a.mode == "plain" else zero3_sharding(True, training_zero3_config(a.mode), "float32", False)

    def load():
        return AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)

    values = distributed.shared_reference_logps(load, a.model_dir, examples, 0, BATCH, cache, "fp32", zero3=zero3)
    figures = pending_figures()
    if distributed.is_main_process():
        files = sorted(p.name for p in (cache / "reference_logps").glob("*.json"))
        Path(a.out).write_text(json.dumps({"values": {str(k): list(v) for k, v in values.items()},
                                           "memory": figures, "cache_files": files,
                                           "world": distributed.world_size()}))
    distributed.destroy_process_group()


if __name__ == "__main__":
    main()
