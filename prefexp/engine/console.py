"""What a training job prints while it trains: one line per logging step with the headline
metrics as numbers, the progress, the token rate and the ETA, on a terminal and off one. The
Trainer's own printer (a dict of formatted strings, every key) is replaced; every key still goes
to metrics.jsonl and W&B. (Library chatter before any of this: ``engine.library_noise``.)
"""
from __future__ import annotations

import logging
from typing import Optional

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .progress import duration

log = logging.getLogger("prefexp.train")

STEP_KEYS = ("loss", "rewards/accuracies", "rewards/margins", "route/sft_fraction")
HELDOUT_KEYS = ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins")


def _numbers(logs: dict, keys: tuple[str, ...]) -> list[str]:
    return [f"{k} {logs[k]:.4g}" for k in keys if isinstance(logs.get(k), (int, float))]


def console_line(step: int, max_steps: int, logs: dict) -> Optional[str]:
    """The line for one Trainer ``on_log`` call: a training step, a held-out evaluation, or the
    end of training; None for anything else."""
    if "loss" in logs:
        parts = [f"step {step}/{max_steps} ({100 * step / max(max_steps, 1):.0f} %)", *_numbers(logs, STEP_KEYS)]
        if isinstance(logs.get("learning_rate"), (int, float)):
            parts.append(f"lr {logs['learning_rate']:.3g}")
        if isinstance(logs.get("throughput/tokens_per_second"), (int, float)):
            parts.append(f"{logs['throughput/tokens_per_second']:.0f} tok/s")
        if isinstance(logs.get("throughput/eta_s"), (int, float)):
            parts.append(f"ETA {duration(logs['throughput/eta_s'])}")
        return " | ".join(parts)
    if "eval_loss" in logs:
        return f"held-out pairs at step {step}: " + ", ".join(_numbers(logs, HELDOUT_KEYS))
    if "train_runtime" in logs:
        return f"training done: step {step} in {duration(logs['train_runtime'])}"
    return None


class ConsoleCallback(TrainerCallback):
    """Logs :func:`console_line` on rank 0 (to the console and train.log). Must come after the
    callbacks that add the throughput and memory keys."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            line = console_line(state.global_step, state.max_steps, logs)
            if line:
                log.info(line)


class BarOnlyProgressCallback(ProgressCallback):
    """The Trainer's progress bar on a terminal, without its dict of every logged value."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


def use_console(trainer, progress_bar: bool) -> None:
    """Swap the Trainer's printer (or its bar's log writes) for :class:`ConsoleCallback`."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress_bar:
        trainer.add_callback(BarOnlyProgressCallback())
    trainer.add_callback(ConsoleCallback())
