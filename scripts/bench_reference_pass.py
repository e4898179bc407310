"""The reference pass on the tiny GPT-2 of ../shared/data: wall time and peak RSS, fused head vs full logits.

    PYTHONPATH=$PWD python scripts/bench_reference_pass.py                # --head auto (the fused head)
    PYTHONPATH=$PWD python scripts/bench_reference_pass.py --head logits  # full [2B, T, V] logits

Runs ``prefexp.engine.reference.compute_reference_logps`` (what the pipeline's reference stage
calls) on the first ``--pairs`` UltraFeedback pairs, tokenised as ``dataset=ultrafeedback`` does
(max_length 1024, max_prompt_length 512), in batches of ``--batch-size`` pairs (the default
``trainer.reference_batch_size``), on one thread. Peak RSS is the process's high-water mark; run
each head in its own process. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import functools
import json
import resource
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--head", choices=["auto", "fused", "logits"], default="auto")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default=str(SHARED / "models" / "tiny-gpt2"))
    parser.add_argument("--data", default=str(SHARED / "preference" / "ultrafeedback"
                                              / "trl_ultrafeedback_binarized_train1000.jsonl.gz"))
    a = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefexp.data.files import read_data_file
    from prefexp.data.records import to_pairs
    from prefexp.engine import reference
    from prefexp.engine.logps import forward_logps
    from prefexp.engine.memory import current_rss_mb
    from prefexp.engine.tokenize import ensure_chat_template, tokenize_pairs

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    ensure_chat_template(tokenizer, None)
    pairs = to_pairs(read_data_file(a.data, "skip"), a.data, "skip", require_scores=False)[: a.pairs]
    examples, _ = tokenize_pairs(pairs, tokenizer, 1024, 512)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    reference.forward_logps = functools.partial(forward_logps, head=a.head)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    start = current_rss_mb()
    t0 = time.perf_counter()
    values = reference.compute_reference_logps(model, examples, pad, a.batch_size, "fp32")
    wall = time.perf_counter() - t0
    print(json.dumps({"head": a.head, "pairs": len(values),
                      "response_tokens": sum(len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples),
                      "wall_s": round(wall, 2), "rss_before_pass_mb": round(start),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "sum_logps": sum(c + r for c, r in values.values())}))


if __name__ == "__main__":
    main()
