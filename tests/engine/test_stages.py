"""The staged learning-rate schedule: transformers' own curve per stage, restarted at each stage."""
from __future__ import annotations

import math

import pytest
import torch
from transformers import get_scheduler

from prefexp.engine.stages import StageWindow, staged_lambda, staged_scheduler


def curve(name: str, steps: int, warmup: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=steps)
    return [sched.lr_lambdas[0](t) for t in range(steps)]


@pytest.mark.parametrize("name", ["cosine", "linear", "constant_with_warmup"])
def test_one_stage_is_the_trainers_schedule(name):
    staged = staged_lambda([StageWindow(0, 20, name, 0.1)])
    assert [staged(t) for t in range(20)] == curve(name, 20, 2)  # warm-up ceil(0.1 x 20) = 2 steps


def test_the_second_stage_restarts_warmup_and_decay():
    staged = staged_lambda([StageWindow(0, 10, "cosine", 0.1), StageWindow(10, 15, "linear", 0.2)])
    assert [staged(t) for t in range(10)] == curve("cosine", 10, 1)
    assert [staged(t) for t in range(10, 15)] == curve("linear", 5, 1)
    # by hand: cosine ends near 0, the restart is a 1-step warm-up (0) then the peak, then linear decay
    assert staged(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 9)))
    assert (staged(10), staged(11), staged(12)) == (0.0, 1.0, 0.75)


def test_the_schedule_resumes_from_its_state_dict(tmp_path):
    windows = [StageWindow(0, 4, "cosine", 0.0), StageWindow(4, 8, "cosine", 0.25)]
    p = torch.zeros(1, requires_grad=True)
    first = staged_scheduler(torch.optim.SGD([p], lr=2.0), windows)
    for _ in range(5):
        first.optimizer.step()
        first.step()
    resumed_opt = torch.optim.SGD([p], lr=2.0)
    resumed = staged_scheduler(resumed_opt, windows)
    saved = first.state_dict()
    torch.save(saved, tmp_path / "scheduler.pt")  # as the Trainer saves and loads it
    resumed.load_state_dict(torch.load(tmp_path / "scheduler.pt", weights_only=True))
    for _ in range(3):
        first.step()
        resumed.step()
        assert resumed.get_last_lr() == first.get_last_lr()
