"""Log the last optimizer step too, so metrics.jsonl always ends at the end of training.

The Trainer logs every ``logging_steps`` steps (and step 1 with ``logging_first_step``). A run whose
length is not a multiple of it ends with stored metrics that are never logged: with
``trainer.max_steps=3`` and ``logging_steps=5`` the only row is step 1, computed on the initial
weights. This callback asks for one more log at ``state.max_steps``.
"""
from __future__ import annotations

from transformers import TrainerCallback


class LogLastStepCallback(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_log = True
        return control
