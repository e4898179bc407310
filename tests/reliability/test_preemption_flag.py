"""The preemption flag and callback in-process (prefexp/engine/preemption.py): a signal is only
recorded (the step is never cut in half), the next step end asks the Trainer to save and stop, and
the exit code is 128 + the signal's number."""
from __future__ import annotations

import os
import signal

from transformers import TrainerControl, TrainerState

from prefexp.engine.preemption import Preempted, PreemptionCallback, PreemptionFlag


def test_sigterm_is_recorded_then_the_step_end_saves_and_stops():
    before = signal.getsignal(signal.SIGTERM)
    flag = PreemptionFlag().install()
    try:
        callback = PreemptionCallback(flag)
        state, control = TrainerState(), TrainerControl()
        state.global_step = 4
        callback.on_step_end(None, state, control)
        assert not control.should_save and not control.should_training_stop and callback.stopped_at is None
        os.kill(os.getpid(), signal.SIGTERM)  # handled: this process keeps running
        assert flag.signum == signal.SIGTERM
        state.global_step = 5
        callback.on_step_end(None, state, control)
        assert control.should_save and control.should_training_stop and callback.stopped_at == 5
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGTERM) == before, "the handler is the training phase's only"


def test_exit_codes_are_128_plus_the_signal():
    assert Preempted(signal.SIGTERM, 3, "/r/checkpoints/checkpoint-3").exit_code == 143
    assert Preempted(signal.SIGINT, 3, None).exit_code == 130
    assert "SIGTERM at step 3: checkpoint saved in /r/checkpoints/checkpoint-3" in str(
        Preempted(signal.SIGTERM, 3, "/r/checkpoints/checkpoint-3"))
