"""The console line of a logging step (prefexp.engine.console), derived by hand."""
from __future__ import annotations

from prefexp.engine.console import console_line
from prefexp.engine.progress import duration


def test_a_training_step_reads_as_numbers_with_progress_rate_and_eta():
    logs = {"loss": 0.693147, "rewards/accuracies": 0.65625, "rewards/margins": 0.00036, "grad_norm": 0.08,
            "learning_rate": 3.2727e-05, "throughput/tokens_per_second": 1524.6, "throughput/eta_s": 200.4,
            "logps/chosen/easy": -15.3}  # grad_norm, per-route keys: metrics.jsonl and W&B only
    assert console_line(4, 6, logs) == ("step 4/6 (67 %) | loss 0.6931 | rewards/accuracies 0.6562 | "
                                        "rewards/margins 0.00036 | lr 3.27e-05 | 1525 tok/s | ETA 3m20s")


def test_held_out_end_of_training_and_other_logs():
    assert console_line(50, 100, {"eval_loss": 0.61234, "eval_rewards/accuracies": 0.7}) == \
        "held-out pairs at step 50: eval_loss 0.6123, eval_rewards/accuracies 0.7"
    assert console_line(100, 100, {"train_runtime": 3725.0, "train_loss": 0.6}) == "training done: step 100 in 1h02m"
    assert console_line(3, 6, {"epoch": 0.1}) is None


def test_durations():
    assert [duration(s) for s in (0.4, 59.6, 60, 3599, 3600, 86399)] == ["0 s", "1m00s", "1m00s", "59m59s",
                                                                           "1h00m", "23h59m"]


def test_progress_off_a_terminal_every_tenth_after_a_quiet_start(caplog):
    """100 pairs, one per second on a fake clock: silent for the first 5 s (the 10 % mark at 10 s is
    the first line), then a line at each further tenth with the rate and the ETA; a loop that ends
    within 5 s prints nothing."""
    import logging

    from prefexp.engine.progress import Progress

    now = [0.0]
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress = Progress(100, "reference log-probs", "pairs", log, enabled=True, clock=lambda: now[0])
        for done in range(1, 101):
            now[0] = float(done)
            progress.update(done)
        fast = Progress(100, "tokenising", "pairs", log, enabled=True, clock=lambda: 1.0)
        for done in range(1, 101):
            fast.update(done)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and not any(line.startswith("tokenising") for line in lines)
    assert [int(line.split(": ")[1].split("/")[0]) for line in lines] == list(range(10, 101, 10))
    assert lines[0] == "reference log-probs: 10/100 pairs (10 %), 1.0 pairs/s, ETA 1m30s"
    assert lines[-1] == "reference log-probs: 100/100 pairs (100 %), 1.0 pairs/s, ETA 0 s"
