"""Preemption: SIGTERM (what SLURM sends before it kills a job) and SIGINT (Ctrl-C) end the run
cleanly: the current optimizer step finishes, a checkpoint of that step is saved, and the job
exits with ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT) after one line saying where
the checkpoint is and that the same command resumes from it.

:func:`install` replaces the handlers for the training phase only; :class:`PreemptionCallback` asks
the Trainer to save and stop at the end of the step during which a signal arrived; the pipeline
then raises :class:`Preempted` instead of writing the final checkpoint.
"""
from __future__ import annotations

import logging
import signal

from transformers import TrainerCallback

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Training stopped on a signal after saving ``checkpoint``; ``exit_code`` = 128 + signal number."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        where = f"checkpoint saved in {checkpoint}" if checkpoint else "no checkpoint saved"
        super().__init__(f"{signal.Signals(signum).name} at step {step}: {where}; "
                         "run the same command again to resume from it")


class PreemptionFlag:
    """Which signal arrived (None: none). The handler only records it: saving inside a signal
    handler would interrupt the step half-way (a torn optimizer state)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait for the save
        self.signum = signum
        log.warning("%s received: finishing this step, then saving a checkpoint and stopping",
                    signal.Signals(signum).name)

    def install(self) -> "PreemptionFlag":
        import threading

        if threading.current_thread() is not threading.main_thread():  # signal.signal would raise
            log.warning("training outside the main thread: SIGTERM / SIGINT stop it without a checkpoint")
            return self
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class PreemptionCallback(TrainerCallback):
    """At the end of the step during which a signal arrived: save this step and stop training.

    Under several ranks each rank gets the signal from the launcher (prefexp.launch.ranks), but
    not necessarily during the same step; the ranks agree (max over ranks) so that all of them
    save the same step together."""

    def __init__(self, flag: PreemptionFlag):
        self.flag = flag
        self.stopped_at: int | None = None  # the step saved and stopped at (None: ran to the end)

    def on_step_end(self, args, state, control, **kwargs):
        if _any_rank(self.flag.signum is not None):
            if self.flag.signum is None:  # another rank got it first
                self.flag.signum = signal.SIGTERM
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control


def _any_rank(value: bool) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    flag = torch.tensor([1.0 if value else 0.0])
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)
