"""Training throughput and memory: prefexp against TRL's DPOTrainer, same model, data and settings.

    python scripts/bench_train.py                      # CPU preset, every run, JSON in outputs/bench/
    python scripts/bench_train.py --preset gpu         # 0.5B Qwen2-shaped model, sequences up to 2048
    python scripts/bench_train.py --runs prefexp,trl --steps 4 --gradient-checkpointing
    python scripts/bench_train.py --preset tiny-gpt2 [--tree ../main --tree .]  # the real-model path

TRL is optional: without it the trl runs are skipped with a note (a bare GPU machine may lack it).
The tiny-gpt2 preset runs ``python -m prefexp.train`` itself (scripts/bench_real_model.py).

The main process writes one random-weight model (built from its config), a WordLevel tokenizer and
a synthetic pair set with UltraFeedback-like length spread into a temporary folder, then runs each
trainer in its own subprocess (``--worker NAME``) so peak memory never mixes. Every run trains the
same pairs in the same order (sequential sampler) with the same optimizer, learning rate, seed,
micro-batch, accumulation, precision and DPO beta; TRL gets the pairs as text that its tokenizer
turns back into exactly the same ids (checked).

Runs:
  prefexp          shared-prompt packed batches + fused LM head (log-probs of response tokens only)
  prefexp_padded   PairCollator's padded [2B, T] rows + fused LM head
  prefexp_before   padded rows + full [2B, T, V] logits and log-softmax (prefexp before this work)
  trl              DPOTrainer as shipped: reference forward at every step
  trl_precompute   DPOTrainer with precompute_ref_log_probs=True

tokens/s = (prompt + chosen + rejected tokens of the pairs trained, no padding) / training-step wall
time, over the steps after the warm-up; a step is one optimizer step (micro-batch x accumulation),
from the end of the previous step to the end of this one (data loading and logging included).
Reference log-prob precomputation (prefexp always, TRL with precompute) is reported in its own
column. Peak memory: the resident-set high-water mark after imports (CPU), max allocated (GPU).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RUNS = ("prefexp", "prefexp_padded", "prefexp_before", "trl", "trl_precompute")
PREFEXP_RUNS = {"prefexp": ("packed", "auto"), "prefexp_padded": ("padded", "auto"),
                "prefexp_before": ("padded", "before")}
PAD, EOS, UNK = 0, 1, 2

# Length spread: log-normal (median, sigma) per part, roughly UltraFeedback-binarized under a Llama
# tokenizer (prompt median ~90 tokens with a long tail, chosen ~270, rejected ~220); the CPU preset
# scales the medians by 1/4 so a step takes about a second on 2 cores.
PRESETS = {
    "cpu": {
        "model": {"type": "llama", "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096},
        "lengths": {"prompt": (22, 1.0), "chosen": (68, 0.7), "rejected": (55, 0.8)},
        "max_length": 512, "max_prompt_length": 256,
        "micro_batch": 4, "grad_accum": 2, "steps": 8, "warmup_steps": 2, "precision": "fp32",
        "threads": 2,
    },
    "gpu": {
        # Qwen2.5-0.5B shape (tied embeddings, GQA 14/2), random weights
        "model": {"type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                  "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
                  "tie_word_embeddings": True, "rope_theta": 1000000.0},
        "lengths": {"prompt": (90, 1.0), "chosen": (270, 0.7), "rejected": (220, 0.8)},
        "max_length": 2048, "max_prompt_length": 1024,
        "micro_batch": 4, "grad_accum": 4, "steps": 20, "warmup_steps": 3, "precision": "bf16",
        "threads": None,
    },
}
COMMON = {"learning_rate": 1e-4, "beta": 0.1, "seed": 0, "reference_batch_size": 8}
PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12}  # dense, per GPU


# ---------------------------------------------------------------- data, model, tokenizer (main)

def make_pairs(n: int, spec: dict, vocab: int, seed: int) -> list[dict]:
    """n pairs of random token ids with log-normal lengths, truncated as prefexp.engine.tokenize does."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = spec["lengths"]
    max_len, max_prompt = spec["max_length"], spec["max_prompt_length"]

    def draw(part: str) -> int:
        median, sigma = lengths[part]
        return max(1, int(round(rng.lognormal(math.log(median), sigma))))

    pairs = []
    for i in range(n):
        p, c, r = draw("prompt"), draw("chosen"), draw("rejected")
        if p + max(c, r) > max_len and p > max_prompt:
            p = max_prompt
        c, r = min(c, max_len - p), min(r, max_len - p)
        ids = lambda k: rng.integers(3, vocab, size=k).tolist()  # noqa: E731
        pairs.append({"index": i, "prompt_ids": ids(p), "chosen_ids": ids(c - 1) + [EOS],
                      "rejected_ids": ids(r - 1) + [EOS]})
    return pairs


def build_tokenizer(vocab: int, path: Path):
    """WordLevel tokenizer: id k <-> word 't{k}', so TRL's text round-trips to our ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": PAD, "<eos>": EOS, "<unk>": UNK} | {f"t{k}": k for k in range(3, vocab)}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.save_pretrained(str(path))
    return fast


def build_model(spec: dict, path: Path, seed: int) -> int:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    m = dict(spec["model"])
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[m.pop("type")]
    config = cls(**m, max_position_embeddings=4096 if spec["max_length"] <= 4096 else spec["max_length"],
                 pad_token_id=PAD, eos_token_id=EOS, bos_token_id=EOS, attention_dropout=0.0)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(path))
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- measurement helpers (worker)

def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0) and CUDA's peak counter."""
    import torch

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_mb() -> dict:
    import torch

    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        with open("/proc/self/status") as f:
            hwm = [line for line in f if line.startswith("VmHWM:")]
        out["peak_rss_mb"] = int(hwm[0].split()[1]) / 1024  # since reset_peak()
    except (OSError, IndexError):
        pass
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[tuple[float, float]] = []  # (wall, process CPU) at each optimizer step's end
            self.start = None

        def _sync(self):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()

        def on_train_begin(self, args, state, control, **kw):
            self._sync()
            self.start = (time.perf_counter(), time.process_time())

        def on_step_end(self, args, state, control, **kw):
            self._sync()
            self.ends.append((time.perf_counter(), time.process_time()))

        def step_times(self, which: int = 0) -> list[float]:
            marks = [self.start[which]] + [end[which] for end in self.ends]
            return [b - a for a, b in zip(marks, marks[1:])]

    return StepTimer()


def legacy_forward_logps(model, batch):
    """prefexp.engine.logps.forward_logps before this work: full logits, one log-softmax."""
    import torch

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1, :].float()  # [2B, T-1, V]
    per_token = logits.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1) - torch.logsumexp(logits, -1)
    mask = batch["response_mask"][:, 1:].to(out.logits.dtype)
    return (per_token * mask).sum(-1), mask.sum(-1)


def training_args_kwargs(s: dict, out_dir: str) -> dict:
    """The settings both trainers share, spelled out (DPOConfig's defaults differ from TrainingArguments')."""
    return dict(
        output_dir=out_dir, max_steps=s["warmup_steps"] + s["steps"], per_device_train_batch_size=s["micro_batch"],
        gradient_accumulation_steps=s["grad_accum"], learning_rate=s["learning_rate"], lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", seed=s["seed"],
        bf16=s["precision"] == "bf16", fp16=False, gradient_checkpointing=s["gradient_checkpointing"],
        torch_compile=s["compile"], logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        train_sampling_strategy="sequential", dataloader_num_workers=0, use_cpu=s["device"] == "cpu",
        **({"use_liger_kernel": True,
            "liger_kernel_config": {"fused_linear_cross_entropy": False, "cross_entropy": False}} if s["liger"] else {}),
    )


def reference_autocast(s: dict):
    import contextlib

    import torch

    if s["precision"] == "bf16":  # score the reference under the same autocast as the training forward
        return torch.autocast(s["device"], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_prefexp(name: str, s: dict, work: Path, pairs: list[dict], timer) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    import prefexp.engine.reference as reference_module
    import prefexp.engine.trainer as trainer_module
    from prefexp.engine.batching import PairCollator
    from prefexp.engine.packing import PackedPairCollator
    from prefexp.engine.reference import compute_reference_logps
    from prefexp.engine.trainer import PreferenceTrainer
    from prefexp.losses.dpo import DPOLoss

    layout, head = PREFEXP_RUNS[name]
    if head == "before":  # this worker process only: the reference pass and the training step
        reference_module.forward_logps = trainer_module.forward_logps = legacy_forward_logps
    device = torch.device(s["device"])
    tokenizer = AutoTokenizer.from_pretrained(str(work / "tokenizer"))
    t0 = time.perf_counter()
    ref_model = AutoModelForCausalLM.from_pretrained(str(work / "model")).to(device)
    with reference_autocast(s):
        ref = compute_reference_logps(ref_model, pairs, PAD, s["reference_batch_size"])
    del ref_model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    precompute_s = time.perf_counter() - t0
    examples = [dict(e, reference_chosen_logps=ref[e["index"]][0], reference_rejected_logps=ref[e["index"]][1])
                for e in pairs]

    class Trainer(PreferenceTrainer):
        def loss_inputs(self, batch, logps, lengths):
            # A packed batch has fewer rows than 2B: hand loss_inputs a view whose row count is 2B,
            # until PreferenceTrainer takes B from logps (docs/benchmarks.md, "In the pipeline").
            view = dict(batch, input_ids=batch["input_ids"].new_empty((logps.shape[0], 0)))
            return super().loss_inputs(view, logps, lengths)

    t1 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(work / "model"))
    for module in model.modules():  # as run.py with disable_dropout=true
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    collator = PackedPairCollator(PAD) if layout == "packed" else PairCollator(PAD)
    args = TrainingArguments(**training_args_kwargs(s, str(work / f"out-{name}")), remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator,
                      processing_class=tokenizer, preference_loss=DPOLoss(beta=s["beta"]), callbacks=[timer])
    init_s = time.perf_counter() - t1
    trainer.train()
    return {"precompute_s": precompute_s, "init_s": init_s, "log_history": trainer.state.log_history}


def run_trl(name: str, s: dict, work: Path, pairs: list[dict], timer) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    precompute = name == "trl_precompute"
    text = lambda ids: " ".join(f"t{k}" for k in ids)  # noqa: E731
    # TRL appends the EOS text to non-conversational completions itself
    rows = [{"prompt": text(e["prompt_ids"]), "chosen": " " + text(e["chosen_ids"][:-1]),
             "rejected": " " + text(e["rejected_ids"][:-1])} for e in pairs]
    tokenizer = AutoTokenizer.from_pretrained(str(work / "tokenizer"))
    timings = {"precompute_s": 0.0}

    class TimedDPOTrainer(DPOTrainer):
        def _precompute_ref_logps(self, *a, **k):
            t = time.perf_counter()
            with reference_autocast(s):
                out = super()._precompute_ref_logps(*a, **k)
            timings["precompute_s"] += time.perf_counter() - t
            return out

    t1 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(work / "model"))
    config = DPOConfig(**training_args_kwargs(s, str(work / f"out-{name}")), beta=s["beta"], loss_type="sigmoid",
                       max_length=None, precompute_ref_log_probs=precompute,
                       precompute_ref_batch_size=s["reference_batch_size"], disable_dropout=True)
    trainer = TimedDPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer, callbacks=[timer])
    init_s = time.perf_counter() - t1 - timings["precompute_s"]
    ds = trainer.train_dataset
    same = (len(ds) == len(pairs) and all(
        [d["prompt_ids"], d["chosen_ids"], d["rejected_ids"]] == [e["prompt_ids"], e["chosen_ids"], e["rejected_ids"]]
        for d, e in zip(ds, pairs)))
    if not same:
        raise RuntimeError("TRL's tokenized dataset differs from prefexp's token ids; the comparison would be unfair")
    trainer.train()
    return {"precompute_s": timings["precompute_s"] if precompute else None, "init_s": init_s,
            "log_history": trainer.state.log_history, "tokens_identical": same}


def trl_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("trl") is not None


def worker(name: str, work: Path) -> None:
    import torch

    spec = json.loads((work / "spec.json").read_text())
    s = spec["settings"]
    if s["threads"]:
        torch.set_num_threads(s["threads"])
    import transformers  # noqa: F401  (imports before the memory baseline)

    if name.startswith("trl"):
        import trl  # noqa: F401

    pairs = json.loads((work / "pairs.json").read_text())
    transformers.logging.set_verbosity_error()
    reset_peak()
    base_rss = rss_mb()
    timer = step_timer()
    t0 = time.perf_counter()
    result = (run_trl if name.startswith("trl") else run_prefexp)(name, s, work, pairs, timer)
    result.update(peak_mb(), baseline_rss_mb=base_rss, wall_s=time.perf_counter() - t0,
                  step_times_s=timer.step_times(0), step_cpu_s=timer.step_times(1))
    (work / f"result-{name}.json").write_text(json.dumps(result))


# ---------------------------------------------------------------- main: spawn, collect, compare

def summarize(r: dict, spec: dict) -> dict:
    s = spec["settings"]
    w = s["warmup_steps"]
    times = r["step_times_s"][w:]
    tokens = spec["tokens_per_step"][w: w + len(times)]
    train_logs = [h for h in r["log_history"] if "loss" in h and "train_runtime" not in h]
    precompute = r["precompute_s"] or 0.0
    out = {
        "tokens_per_s": sum(tokens) / sum(times),
        "step_time_s": sum(times) / len(times),
        # per CPU-second of the process (all threads): steadier than wall time on a shared machine
        "tokens_per_cpu_s": sum(tokens) / sum(r["step_cpu_s"][w:]),
        # every step, warm-up included, plus the one-time reference pass (one epoch of data here)
        "e2e_tokens_per_s": sum(spec["tokens_per_step"]) / (sum(r["step_times_s"]) + precompute),
        "peak_mem_mb": r.get("peak_cuda_mb", r["peak_rss_mb"] - r["baseline_rss_mb"]),
        "peak_rss_mb": r["peak_rss_mb"],
        "precompute_s": r["precompute_s"],
        "init_s": r["init_s"],
        "first_loss": train_logs[0]["loss"] if train_logs else None,
        "second_loss": train_logs[1]["loss"] if len(train_logs) > 1 else None,
        "first_logps_chosen": train_logs[0].get("logps/chosen") if train_logs else None,
        "losses": [h["loss"] for h in train_logs],
        "step_times_s": r["step_times_s"],
    }
    if s["device"] == "cuda" and s["precision"] == "bf16" and spec.get("peak_flops"):
        flops = spec["flops_per_step"][w: w + len(times)]
        out["mfu"] = sum(flops) / sum(times) / spec["peak_flops"]
    return out


def flops_per_pair(e: dict, cfg: dict) -> float:
    """Model FLOPs of one pair's policy forward+backward in the padded-free sense: 6 N per token over
    both rows (prompt counted twice, as every trainer here runs it) plus causal attention."""
    h, layers, inter = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    kv = h * cfg["num_key_value_heads"] // cfg["num_attention_heads"]
    n_matmul = layers * (2 * h * h + 2 * h * kv + 3 * h * inter) + h * cfg["vocab_size"]
    rows = [len(e["prompt_ids"]) + len(e["chosen_ids"]), len(e["prompt_ids"]) + len(e["rejected_ids"])]
    return sum(6 * n_matmul * t + 6 * layers * h * t * t for t in rows)


def machine_info(device: str) -> dict:
    import tokenizers
    import torch
    import transformers

    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "trl": __import__("trl").__version__ if trl_available() else None}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_table(summary: dict, ratios: dict) -> None:
    cols = ("tokens/s", "tok/CPU-s", "step s", "peak MB", "ref pass s", "e2e tok/s", "loss 1", "loss 2")
    has_mfu = any("mfu" in v for v in summary.values())
    print(f"\n{'run':15s}" + "".join(f"{c:>11s}" for c in cols) + ("    MFU" if has_mfu else ""))
    for name, v in summary.items():
        pre = "-" if v["precompute_s"] is None else f"{v['precompute_s']:.2f}"
        second = "-" if v["second_loss"] is None else f"{v['second_loss']:.5f}"
        print(f"{name:15s}{v['tokens_per_s']:11.0f}{v['tokens_per_cpu_s']:11.0f}{v['step_time_s']:11.3f}"
              f"{v['peak_mem_mb']:11.0f}{pre:>11s}{v['e2e_tokens_per_s']:11.0f}{v['first_loss']:11.5f}{second:>11s}"
              + (f"{v['mfu']:7.3f}" if "mfu" in v else ""))
    if ratios:
        print(f"\n{'ratio':32s}{'tokens/s':>10s}{'tok/CPU-s':>10s}{'step time':>10s}{'peak mem':>10s}{'e2e':>10s}")
        for key, r in ratios.items():
            print(f"{key:32s}{r['tokens_per_s']:10.2f}{r['tokens_per_cpu_s']:10.2f}{r['step_time']:10.2f}"
                  f"{r['peak_mem']:10.2f}{r['e2e_tokens_per_s']:10.2f}")


def run_worker(name: str, work: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--workdir", str(work)]
    # OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of spinning at barriers. On a shared,
    # oversubscribed CPU, spinning made 2-thread steps ~30x slower (one thread spins while the other
    # is descheduled); passive waiting costs nothing measurable on an idle machine.
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1", PYTHONWARNINGS="ignore")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"worker {name} failed (exit {proc.returncode})")
    return json.loads((work / f"result-{name}.json").read_text())


def compare(runs: list[str], summary: dict) -> tuple[dict, dict]:
    ratios = {}
    for mine in (r for r in runs if r.startswith("prefexp")):
        for theirs in (r for r in runs if r.startswith("trl")):
            p, t = summary[mine], summary[theirs]
            ratios[f"{mine}/{theirs}"] = {
                "tokens_per_s": p["tokens_per_s"] / t["tokens_per_s"],
                "tokens_per_cpu_s": p["tokens_per_cpu_s"] / t["tokens_per_cpu_s"],
                "step_time": p["step_time_s"] / t["step_time_s"],
                "peak_mem": p["peak_mem_mb"] / t["peak_mem_mb"],
                "e2e_tokens_per_s": p["e2e_tokens_per_s"] / t["e2e_tokens_per_s"]}
    parity = {}
    if "trl" in summary:
        ref = summary["trl"]
        for name, v in summary.items():
            if name != "trl":
                parity[name] = {"first_loss_diff": abs(v["first_loss"] - ref["first_loss"]),
                                "second_loss_diff": None if v["second_loss"] is None or ref["second_loss"] is None
                                else abs(v["second_loss"] - ref["second_loss"]),
                                # the loss is ln 2 for any policy == reference; the log-probs are not
                                "first_logps_chosen_diff": abs(v["first_logps_chosen"] - ref["first_logps_chosen"])}
    return ratios, parity


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS) + ["tiny-gpt2"], default="cpu")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    ap.add_argument("--steps", type=int, help="measured optimizer steps (after the warm-up)")
    ap.add_argument("--warmup-steps", type=int)
    ap.add_argument("--micro-batch", type=int)
    ap.add_argument("--grad-accum", type=int)
    ap.add_argument("--threads", type=int, help="torch CPU threads (CPU preset default 2)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of all runs, interleaved; each run keeps its best round (a shared machine is noisy)")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--compile", action="store_true", help="TrainingArguments(torch_compile=True) for every run")
    ap.add_argument("--liger", action="store_true", help="Liger layer kernels for every run (GPU, if installed)")
    ap.add_argument("--out", type=Path, help="result JSON (default outputs/bench/<preset>-<time>.json)")
    ap.add_argument("--loss-tolerance", type=float, default=1e-3)
    ap.add_argument("--tree", type=Path, action="append",
                    help="tiny-gpt2 preset: a checkout whose prefexp to run (repeatable; default this one)")
    ap.add_argument("--max-rows", type=int, default=64, help="tiny-gpt2 preset: dataset.max_rows")
    ap.add_argument("--timeout", type=int, default=3600, help="tiny-gpt2 preset: seconds per run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker, a.workdir)
        return 0
    if a.preset == "tiny-gpt2":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_real_model import bench_tiny_gpt2

        return bench_tiny_gpt2(a.tree or [REPO], a.max_rows, a.steps or 4, a.out, a.timeout)

    import torch

    runs = [r for r in a.runs.split(",") if r]
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        ap.error(f"unknown run(s) {unknown}; choose from {list(RUNS)}")
    if not trl_available() and any(r.startswith("trl") for r in runs):
        print("note: TRL is not installed; skipping the trl runs (pip install trl to compare)")
        runs = [r for r in runs if not r.startswith("trl")]
    preset = PRESETS[a.preset]
    device = "cuda" if a.preset == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        ap.error("--preset gpu needs CUDA")
    liger = False
    if a.liger:
        from prefexp.engine.fused_logps import liger_available

        liger = liger_available()
        if not liger:
            print("--liger: liger_kernel is not installed or there is no GPU; running without it")
    s = {k: preset[k] for k in ("micro_batch", "grad_accum", "steps", "warmup_steps", "precision", "threads",
                                "max_length", "max_prompt_length")} | COMMON
    for key in ("steps", "warmup_steps", "micro_batch", "grad_accum", "threads"):
        if getattr(a, key) is not None:
            s[key] = getattr(a, key)
    s |= {"device": device, "gradient_checkpointing": a.gradient_checkpointing, "compile": a.compile, "liger": liger}

    t_start = time.perf_counter()
    pairs_per_step = s["micro_batch"] * s["grad_accum"]
    n_steps = s["warmup_steps"] + s["steps"]
    rounds: dict[str, list[dict]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory(prefix="prefexp-bench-") as tmp:
        work = Path(tmp)
        pairs = make_pairs(n_steps * pairs_per_step, preset, preset["model"]["vocab_size"], s["seed"])
        build_tokenizer(preset["model"]["vocab_size"], work / "tokenizer")
        n_params = build_model(preset, work / "model", s["seed"])
        (work / "pairs.json").write_text(json.dumps(pairs))
        steps = [pairs[k * pairs_per_step: (k + 1) * pairs_per_step] for k in range(n_steps)]
        spec = {"preset": a.preset, "settings": s, "model": preset["model"], "n_params": n_params,
                "tokens_per_step": [sum(len(e["prompt_ids"]) + len(e["chosen_ids"]) + len(e["rejected_ids"])
                                        for e in st) for st in steps],
                "flops_per_step": [sum(flops_per_pair(e, preset["model"]) for e in st) for st in steps]}
        if device == "cuda":
            gpu = torch.cuda.get_device_name(0)
            spec["peak_flops"] = next((v for k, v in PEAK_BF16_FLOPS.items() if k in gpu), None)
        (work / "spec.json").write_text(json.dumps(spec))
        lengths = [len(e["prompt_ids"]) + max(len(e["chosen_ids"]), len(e["rejected_ids"])) for e in pairs]
        print(f"preset={a.preset}: {n_params / 1e6:.1f}M params, {len(pairs)} pairs, padded-row length "
              f"mean {sum(lengths) / len(lengths):.0f} max {max(lengths)}, micro-batch {s['micro_batch']} x "
              f"accumulation {s['grad_accum']}, {s['warmup_steps']}+{s['steps']} steps, {s['precision']}")
        for k in range(a.repeat):
            for name in runs:
                t = time.perf_counter()
                rounds[name].append(summarize(run_worker(name, work), spec))
                print(f"  round {k + 1}/{a.repeat} {name}: {rounds[name][-1]['tokens_per_s']:.0f} tokens/s "
                      f"({time.perf_counter() - t:.0f}s)")

    summary = {name: max(rs, key=lambda r: r["tokens_per_s"]) for name, rs in rounds.items()}
    for name, rs in rounds.items():
        summary[name]["rounds_tokens_per_s"] = [r["tokens_per_s"] for r in rs]
    ratios, parity = compare(runs, summary)
    print_table(summary, ratios)
    for name, d in parity.items():
        second = "" if d["second_loss_diff"] is None else f", second-step loss |diff| {d['second_loss_diff']:.2e}"
        print(f"{name} vs trl: first-step loss {summary[name]['first_loss']:.6f} vs {summary['trl']['first_loss']:.6f}, "
              f"|diff| {d['first_loss_diff']:.2e}{second}, first-step mean chosen log-prob |diff| "
              f"{d['first_logps_chosen_diff']:.2e}")

    report = {"preset": a.preset, "settings": s, "model": preset["model"], "n_params": n_params,
              "machine": machine_info(device), "command": " ".join([Path(sys.executable).name] + sys.argv),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "bench_wall_s": time.perf_counter() - t_start,
              "load_average": os.getloadavg(), "runs": summary, "ratios": ratios, "parity": parity}
    out = a.out or REPO / "outputs" / "bench" / f"{a.preset}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults: {out}  ({time.perf_counter() - t_start:.0f}s)")
    bad = {n: d for n, d in parity.items() if d["first_loss_diff"] > a.loss_tolerance}
    if bad:
        print(f"FAIL: first-step loss differs from TRL by more than {a.loss_tolerance}: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
