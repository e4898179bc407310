"""`python -m prefexp.train adapter=lora ...` end to end (subprocesses): the sandbox model and the
shared tiny-gpt2, each a few steps.

Hand-derived trainable counts (r = 16, peft's default targets):
- sandbox Llama, hidden 64, 4 heads = 4 KV heads, 2 layers, q_proj + v_proj (64 -> 64):
  2 x 2 x (16*64 + 64*16) = 8,192.
- tiny-gpt2, n_embd 2, 2 layers, c_attn (Conv1D 2 -> 6): 2 x (16*2 + 6*16) = 256, on top of its
  102,714 parameters (shared/data/models/README.md) = 102,970.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import SHARED
from tests.helpers import REPO, read_jsonl, run_train

SMALL_SANDBOX = ("dataset.sandbox.num_prompts=400", "model.sandbox.sft_steps=80", "model.sandbox.num_prompts=400")
TINY_GPT2 = SHARED / "data" / "models" / "tiny-gpt2"


def assert_no_deprecation_warning(stderr: str) -> None:
    for marker in ("FutureWarning", "DeprecationWarning"):
        assert marker not in stderr, stderr[stderr.index(marker) - 500: stderr.index(marker) + 300]


@pytest.fixture(scope="module")
def sandbox_run(tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("lora-sandbox")
    proc = run_train(run_dir, "adapter=lora", "loss=mixdpo", "tau=0.5", "trainer.max_steps=4",
                     "trainer.logging_steps=1", "trainer.learning_rate=1e-3", "logger=none", *SMALL_SANDBOX)
    return run_dir, proc.stderr


def test_sandbox_lora_logs_count_and_starts_at_ln2(sandbox_run):
    run_dir, stderr = sandbox_run
    manifest = json.loads((run_dir / "checkpoint" / "manifest.json").read_text())
    base_total = sum(p.numel() for p in _load(manifest["base_model"]).parameters())
    assert f"trainable parameters: 8,192 of {base_total + 8192:,}" in (run_dir / "train.log").read_text()
    assert manifest["adapter"] == {"kind": "lora", "r": 16, "alpha": 32.0, "merged": False, "adapter_dir": ".",
                                   "trainable_parameters": 8192, "total_parameters": base_total + 8192}
    # the reference cache is keyed by the BASE weights (the adapter does not exist yet when it is filled)
    from prefexp.engine.reference import weights_fingerprint

    cache_file = re.search(r"reference log-probs: (?:cache hit|computed \d+ pairs, cached at) (\S+)",
                           (run_dir / "train.log").read_text()).group(1)
    assert Path(cache_file).name.startswith(weights_fingerprint(manifest["base_model"]) + "-")
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)  # B = 0: policy = reference at step 1
    assert_no_deprecation_warning(stderr)


def test_sandbox_lora_changes_only_adapter_weights(sandbox_run):
    run_dir, _ = sandbox_run
    ckpt = run_dir / "checkpoint"
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    manifest = json.loads((ckpt / "manifest.json").read_text())
    base = dict(_load(manifest["base_model"]).named_parameters())
    trained = _load(str(ckpt))  # from_pretrained on the adapter folder: base + adapter (peft integration)
    lora, frozen = {}, {}
    for name, p in trained.named_parameters():
        (lora if "lora_" in name else frozen)[name] = p
    assert len(lora) == 8
    assert all(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n), "B starts at 0 and must have trained"
    plain = {n.replace(".base_layer", ""): p for n, p in frozen.items()}
    assert sorted(plain) == sorted(base)
    assert all(torch.equal(plain[n], base[n]) for n in base), "a base weight changed"


def test_evaluate_scores_the_adapter_checkpoint(sandbox_run, tmp_path):
    from prefexp.sandbox.task import gold_score

    run_dir, _ = sandbox_run
    cmd = [sys.executable, "-m", "prefexp.evaluate", f"checkpoint={run_dir}", "eval=sandbox", "eval.limit=8"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run_dir / "eval" / "sandbox"
    results = json.loads((out / "results.json").read_text())
    for protocol, name in (("greedy", "model_outputs.json"), ("sample", "model_outputs.sample.json")):
        answers = json.loads((out / name).read_text())
        answers = answers["outputs"] if isinstance(answers, dict) else answers
        scores = [gold_score(a["prompt"], a["output"]) for a in answers]
        assert len(scores) == 8
        assert results["metrics"][protocol]["mean_gold_score"] == pytest.approx(sum(scores) / 8, abs=1e-9)
    assert results["metrics"]["mean_gold_score"] == results["metrics"]["sample"]["mean_gold_score"]  # the headline


def test_tiny_gpt2_lora_merged_on_save(tmp_path):
    if not TINY_GPT2.is_dir():
        pytest.skip("../shared/data/models/tiny-gpt2 is not beside the repo")
    run_dir = tmp_path / "gpt2"
    proc = run_train(run_dir, "adapter=lora", "adapter.merge_on_save=true", "loss=mixdpo", "tau=0.5",
                     "model=hf", f"model.name_or_path={TINY_GPT2}", "model.dtype=float32", "trainer.max_steps=2", "trainer.logging_steps=1",
                     "trainer.learning_rate=1e-2", "logger=none", "dataset.sandbox.num_prompts=200",
                     # the sandbox's own reference is not this model: its rows, not its samples
                     "dataset.sandbox.responses=synthetic")
    assert "trainable parameters: 256 of 102,970" in (run_dir / "train.log").read_text()
    assert_no_deprecation_warning(proc.stderr)
    ckpt = run_dir / "checkpoint"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((ckpt / "manifest.json").read_text())["adapter"]["merged"] is True
    merged, base = _load(str(ckpt)), _load(str(TINY_GPT2))
    names = [n for n, _ in base.named_parameters()]
    changed = [n for n in names if not torch.equal(dict(merged.named_parameters())[n], dict(base.named_parameters())[n])]
    assert changed == ["transformer.h.0.attn.c_attn.weight", "transformer.h.1.attn.c_attn.weight"]


def test_qlora_without_cuda_is_one_error_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: adapter=qlora is allowed")
    proc = run_train(tmp_path / "q", "adapter=qlora", ok=False, timeout=300)
    assert proc.returncode == 2
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, proc.stderr[-2000:]
    assert "adapter=qlora needs a CUDA GPU" in proc.stderr and "use adapter=lora" in proc.stderr
    assert "Traceback" not in proc.stderr


def _load(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
