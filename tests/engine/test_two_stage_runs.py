"""curriculum=two_stage through the real entry point: stage 1 (preference pairs) then stage 2 (the
routed pairs), each with its own warm-up and cosine decay, read back from the logged learning rates;
and a kill in the middle of stage 2 resumes to the uninterrupted weights."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import get_scheduler

from tests.helpers import read_jsonl, run_train
from tests.reliability.faults import SANDBOX, final_weights, finish, kill9, start, wait_for

RUN = ["loss=mixdpo", "tau=0.5", "curriculum=two_stage", "trainer.per_device_batch_size=4"]
PEAK, BATCH = 5e-5, 4  # the default learning_rate; pairs per step (batch 4 x 1 accumulation x 1 rank)


def cosine(steps: int, warmup_ratio: float = 0.1) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = get_scheduler("cosine", opt, num_warmup_steps=-(-int(warmup_ratio * 1000) * steps // 1000),
                          num_training_steps=steps)
    return [PEAK * sched.lr_lambdas[0](t) for t in range(steps)]


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("two_stage") / "run"
    run_train(run_dir, *SANDBOX, *RUN)
    return run_dir


def test_each_stage_has_its_own_schedule(staged_run):
    summary = json.loads((staged_run / "routing_summary.json").read_text())
    n_pref, n_sft = summary["stages"]
    assert (n_pref, n_sft) == (summary["routes"]["dpo"], summary["routes"]["sft"]) and n_sft > 0
    first_sft = -(-n_pref // BATCH)  # the step holding a stage-1 pair first belongs to stage 1
    total = -(-(n_pref + n_sft) // BATCH)
    want = cosine(first_sft) + cosine(total - first_sft)  # two independent schedules, back to back
    logged = {r["step"]: r["learning_rate"] for r in read_jsonl(staged_run / "metrics.jsonl") if "learning_rate" in r}
    assert sorted(logged) == list(range(1, total + 1))  # logging_steps=1: every step
    for step, lr in logged.items():  # the lr logged at step s is the one step s trained at
        assert lr == pytest.approx(want[step - 1], rel=1e-6, abs=1e-12), step
    assert logged[first_sft] < 0.05 * PEAK and logged[first_sft + 2] > 0.5 * PEAK  # decayed, then restarted
    plan = read_jsonl(staged_run / "routing_plan.jsonl")
    assert [r["route"] for r in plan] == ["dpo"] * n_pref + ["sft"] * n_sft
    assert [r.get("stage", 0) for r in plan] == [0] * n_pref + [1] * n_sft


@pytest.mark.slow
def test_a_kill_in_stage_two_resumes_to_the_uninterrupted_weights(staged_run, tmp_path):
    summary = json.loads((staged_run / "routing_summary.json").read_text())
    n_pref, n_sft = summary["stages"]
    total, first_sft = -(-(n_pref + n_sft) // BATCH), -(-n_pref // BATCH)
    assert total - first_sft >= 3, "stage 2 needs a step to stop in"
    run_dir = tmp_path / "killed"
    pause_at = first_sft + 2  # killed inside the save of a stage-2 step: resumes from the one before
    args = [*RUN, "trainer.save_steps=1"]
    proc, log = start(run_dir, *args, env={"PREFEXP_TEST_PAUSE_IN_SAVE": f"{pause_at}:120"}, log_name="first")
    wait_for(lambda: f"paused in the save of checkpoint-{pause_at}" in log.read_text(), proc, log)
    kill9(proc)
    proc, log = start(run_dir, *args, log_name="second")
    assert finish(proc, log) == 0, log.read_text()[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / f'checkpoint-{pause_at - 1}'}" in log.read_text()
    want, got = final_weights(staged_run), final_weights(run_dir)
    for name in want:
        assert torch.equal(want[name], got[name]), f"{name}: max diff {(want[name] - got[name]).abs().max()}"
