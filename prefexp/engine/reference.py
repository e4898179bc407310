"""Reference log-probs: computed once per example and cached on disk, never once per epoch.

The cache key is the reference weights' fingerprint plus the exact token ids, so the same cache
serves every run and sweep point that trains on the same data from the same reference (sweeps
over tau, curriculum or loss hyperparameters reuse it), and any change of data, tokenizer,
truncation or weights misses it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .batching import PairCollator
from .logps import forward_logps

log = logging.getLogger(__name__)


def weights_fingerprint(model_dir: str) -> str:
    """Hash of a model's weight files (content for local dirs; the name for hub ids)."""
    path = Path(model_dir)
    h = hashlib.sha256()
    if not path.is_dir():
        h.update(model_dir.encode())
        return h.hexdigest()[:16]
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def examples_fingerprint(examples: Sequence[dict]) -> str:
    h = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e["index"]):
        h.update(json.dumps([e["index"], e["prompt_ids"], e["chosen_ids"], e["rejected_ids"]]).encode())
    return h.hexdigest()[:16]


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def reference_cache_path(model_dir: str, examples: Sequence[dict], cache_dir: Path, precision: str = "fp32") -> Path:
    """The cache file of one (reference weights, token ids, mixed precision) triple."""
    key = f"{weights_fingerprint(model_dir)}-{examples_fingerprint(examples)}"
    suffix = "" if precision == "fp32" else f"-{precision}"  # fp32 keeps the original file names
    return Path(cache_dir) / "reference_logps" / f"{key}{suffix}.json"


@torch.no_grad()
def compute_reference_logps(model, examples: Sequence[dict], pad_token_id: int, batch_size: int,
                            precision: str = "fp32") -> dict[int, tuple[float, float]]:
    """Summed response log-probs of every pair. ``precision`` bf16 / fp16 runs the forward under
    the autocast the Trainer uses for the policy (mixed precision), so that at step 1 policy and
    reference agree exactly (DPO's first loss is ln 2, not ln 2 plus rounding noise)."""
    model.eval()
    collate = PairCollator(pad_token_id)
    device = next(model.parameters()).device
    out: dict[int, tuple[float, float]] = {}
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["chosen_ids"]) + len(examples[i]["rejected_ids"]))
    bar = tqdm(range(0, len(order), batch_size), desc="reference log-probs", unit="batch", disable=None)
    for start in bar:  # length-sorted batches waste less padding
        chunk = [examples[i] for i in order[start: start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        with torch.autocast(device.type, dtype=AUTOCAST.get(precision, torch.float32), enabled=precision in AUTOCAST):
            logps, _ = forward_logps(model, batch)
        n = len(chunk)
        for e, c, r in zip(chunk, logps[:n].tolist(), logps[n:].tolist()):
            out[e["index"]] = (c, r)
    return out


def cached_reference_logps(model_loader, model_dir: str, examples: Sequence[dict], pad_token_id: int,
                           batch_size: int, cache_dir: Path, precision: str = "fp32") -> dict[int, tuple[float, float]]:
    """Load from ``cache_dir`` or compute with ``model_loader()`` and store."""
    path = reference_cache_path(model_dir, examples, cache_dir, precision)
    if path.exists():
        log.info("reference log-probs: cache hit %s", path)
        return {int(k): tuple(v) for k, v in json.loads(path.read_text()).items()}
    model = model_loader()
    values = compute_reference_logps(model, examples, pad_token_id, batch_size, precision)
    del model
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({str(k): v for k, v in values.items()}))
    tmp.replace(path)  # atomic: an interrupted run never leaves a half cache
    log.info("reference log-probs: computed %d pairs, cached at %s", len(values), path)
    return values
