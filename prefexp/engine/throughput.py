"""Training throughput in the Trainer's logs: non-padding tokens per second, over all ranks.

The Trainer counts the tokens itself once ``include_num_input_tokens_seen="non_padding"`` is set
(the sum of the batch's attention_mask, gathered over ranks). This callback turns that running
count into a rate over each logging window and adds ``throughput/tokens_per_second`` (plus the
ETA of the run, ``throughput/eta_s``) to the logs, so metrics.jsonl, the console bar on a terminal
and W&B all see it. Off a terminal the Trainer's own progress bar is off and nothing is printed.

The rate is computed at ``on_step_end`` of a step that will log (``control.should_log``, set by
the DefaultFlowCallback that runs first) and added to that step's logs; prefexp's WandbCallback
(``engine.wandb_callback``) runs after this one and logs it in the same W&B row.
"""
from __future__ import annotations

import time

from transformers import TrainerCallback


class ThroughputCallback(TrainerCallback):
    def __init__(self) -> None:
        self._t0: float | None = None
        self._tokens0 = 0
        self._step0 = 0
        self._start: float | None = None
        self._pending: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        # read by Trainer._track_num_input_tokens at every step; "all" would count padding too
        if args.include_num_input_tokens_seen in ("no", False):
            args.include_num_input_tokens_seen = "non_padding"
        self._t0 = self._start = time.perf_counter()
        self._tokens0 = state.num_input_tokens_seen
        self._step0 = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if not control.should_log or self._t0 is None:
            return
        now = time.perf_counter()
        elapsed = max(now - self._t0, 1e-9)
        tokens = state.num_input_tokens_seen - self._tokens0
        steps = state.global_step - self._step0
        self._pending = {"throughput/tokens_per_second": tokens / elapsed}
        if steps > 0 and state.max_steps > 0:
            self._pending["throughput/eta_s"] = (state.max_steps - state.global_step) * elapsed / steps
        self._t0, self._tokens0, self._step0 = now, state.num_input_tokens_seen, state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        # the same numbers into the log dict, for metrics.jsonl and the console
        if logs is not None and "loss" in logs and self._pending:
            logs.update(self._pending)
            self._pending = {}

