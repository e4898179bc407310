"""The ``tiny-gpt2`` preset of scripts/bench_train.py: the real-model path as a new user runs it.

    python scripts/bench_train.py --preset tiny-gpt2                    # this tree
    python scripts/bench_train.py --preset tiny-gpt2 --tree ../old-checkout  # before/after: another checkout
    python scripts/bench_train.py --preset tiny-gpt2 --tree ../main --tree .

Each tree runs ``python -m prefexp.train`` (the issue's command: ``model=hf`` on the tiny GPT-2 of
../shared/data, 64 UltraFeedback rows, 4 steps, probes at their defaults, no W&B) in a subprocess
with ``PYTHONPATH=<tree>`` and a cold cache of its own, so the reference pass, tokenisation and
probes are all in the figures. Measured: wall time of the whole command, the child's peak
resident memory (``wait4``'s ``ru_maxrss``), and what the run itself logged (training tokens/s,
the reference pass's peak). ``--max-rows`` / ``--steps`` shrink it on a busy machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UF_FILE = Path("preference/ultrafeedback/trl_ultrafeedback_binarized_train1000.jsonl.gz")
TINY_GPT2 = Path("models/tiny-gpt2")


def default_data_root() -> Path:
    return Path(os.environ.get("PREFEXP_SHARED_DATA", REPO.parent / "shared" / "data"))


def tiny_gpt2_overrides(data_root: Path, max_rows: int, steps: int) -> list[str]:
    """The issue's command (issue 20): the one real model this machine has, UltraFeedback rows."""
    return ["model=hf", f"model.name_or_path={data_root / TINY_GPT2}", "dataset=ultrafeedback",
            f"dataset.path={data_root / UF_FILE}", f"dataset.max_rows={max_rows}", f"trainer.max_steps={steps}",
            "logger=none"]


def run_pipeline(tree: Path, overrides: list[str], work: Path, timeout: int) -> dict:
    """One ``prefexp.train`` run of ``tree``'s code; its wall time, peak RSS and own metrics."""
    run_dir = work / "run"
    cmd = [sys.executable, "-m", "prefexp.train", *overrides, f"paths.cache_dir={work / 'cache'}",
           f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, PYTHONPATH=str(tree), WANDB_MODE="disabled", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    with open(work / "stderr.log", "w") as err:
        proc = subprocess.Popen(cmd, cwd=str(tree), env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = t0 + timeout
        while True:  # wait4: this child's own peak RSS (RUSAGE_CHILDREN would mix the trees' runs)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").exists() else []
    last = next((r for r in reversed(rows) if "loss" in r), {})
    first = rows[0] if rows else {}
    return {"tree": str(tree), "exit_code": proc.returncode, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime, "steps": last.get("step"),
            "train_tokens_per_s": last.get("throughput/tokens_per_second"),
            "reference_peak_rss_mb": first.get("memory/reference/peak_rss_mb/rank0"),
            "stderr_tail": (work / "stderr.log").read_text()[-1500:] if proc.returncode else ""}


def bench_tiny_gpt2(trees: list[Path], max_rows: int, steps: int, out: Path | None, timeout: int) -> int:
    data_root = default_data_root()
    if not (data_root / TINY_GPT2 / "config.json").exists() or not (data_root / UF_FILE).exists():
        print(f"--preset tiny-gpt2 needs {data_root / TINY_GPT2} and {data_root / UF_FILE} "
              "(set PREFEXP_SHARED_DATA to the data folder)", file=sys.stderr)
        return 2
    overrides = tiny_gpt2_overrides(data_root, max_rows, steps)
    print(f"preset=tiny-gpt2: python -m prefexp.train {' '.join(overrides)}")
    results = []
    for tree in trees:
        with tempfile.TemporaryDirectory(prefix="prefexp-bench-tiny-") as tmp:
            r = run_pipeline(tree.resolve(), overrides, Path(tmp), timeout)
        results.append(r)
        tps = "-" if r["train_tokens_per_s"] is None else f"{r['train_tokens_per_s']:.0f}"
        print(f"  {tree}: exit {r['exit_code']}, wall {r['wall_s']:.0f}s, CPU {r['cpu_s']:.0f}s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, train tokens/s {tps}")
        if r["exit_code"]:
            print(r["stderr_tail"], file=sys.stderr)
    report = {"preset": "tiny-gpt2", "overrides": overrides, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "load_average": os.getloadavg(), "cores": os.cpu_count(), "runs": results}
    out = out or REPO / "outputs" / "bench" / f"tiny-gpt2-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"results: {out}")
    return 1 if any(r["exit_code"] for r in results) else 0
