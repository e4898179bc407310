"""The block a training job ends with: how far it trained, how training ended, what the held-out
pairs and the evaluations say (with their CIs and tie shares), and where the artifacts are.

Read from the run dir alone, from the same files the report reads (metrics.jsonl under the
"final" rule of ``final_window``, eval_metrics.jsonl, eval/<benchmark>/results.json), so the
console says what the artifacts say and nothing else.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import layout
from ..evaluation.results import protocol_lines, summary_line
from .collect import evaluation_failed, read_metrics
from .final_window import FINAL_WINDOW_FRACTION, final_metrics

# the few training numbers a researcher reads first; every other one is in metrics.jsonl / W&B
TRAIN_KEYS = ("loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "route/sft_fraction")
HELDOUT_KEYS = ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins")
ARTIFACTS = (layout.FINAL_CHECKPOINT, layout.METRICS, layout.EVAL_METRICS, layout.ROUTING_SUMMARY, layout.PROBES,
             layout.WANDB, layout.TRAIN_LOG)


def _numbers(row: dict, keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {row[k]:.4f}" for k in keys if isinstance(row.get(k), (int, float)))


def run_summary(run_dir: Path) -> list[str]:
    """The summary block's lines (no trailing newline)."""
    run_dir = Path(run_dir)
    lines = [f"run summary: {run_dir}"]
    rows = read_metrics(run_dir)
    steps = [r["step"] for r in rows if isinstance(r.get("step"), int)]
    lines.append(f"  trained: {max(steps)} optimizer steps" if steps else "  trained: no logged step")
    final = final_metrics(rows)
    if final:
        lines.append(f"  final train metrics (mean of the last {final['final_rows']:.0f} logged rows, the last "
                     f"{100 * FINAL_WINDOW_FRACTION:.0f} % of steps): {_numbers(final, TRAIN_KEYS)}")
    held = read_metrics(run_dir, layout.EVAL_METRICS)
    if held:
        lines.append(f"  held-out pairs (step {held[-1].get('step')}): {_numbers(held[-1], HELDOUT_KEYS)}")
    bench_dirs = sorted(p for p in (run_dir / layout.EVAL).glob("*") if p.is_dir())
    for bench in bench_dirs:
        if evaluation_failed(bench):
            lines.append(f"  evaluation {bench.name}: FAILED, see {bench / layout.FAILED}")
        elif (bench / layout.RESULTS).exists():
            res = json.loads((bench / layout.RESULTS).read_text())
            lines += [f"  evaluation {summary_line(res)}", *["  " + line for line in protocol_lines(res)]]
    if not bench_dirs:
        lines.append("  evaluation: none (evaluate=[sandbox] or python -m prefexp.evaluate checkpoint=<run dir>)")
    present = [name for name in ARTIFACTS if (run_dir / name).exists()]
    present += [f"eval/{b.name}/" for b in bench_dirs]
    lines.append(f"  artifacts (in the run dir): {', '.join(present)}")
    return lines
