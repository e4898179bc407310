"""curriculum.stages: which entries each stage trains, and which optimizer steps it owns."""
from __future__ import annotations

from types import SimpleNamespace

from prefexp.difficulty.plan import PlanEntry
from prefexp.difficulty.stages import stage_step_windows, staged_plan

# plan order: 0, 1, 2 on the preference branch, 3, 4 routed to SFT
PLAN = [PlanEntry(0, 3.0, "dpo", False), PlanEntry(1, 2.0, "dpo", False), PlanEntry(2, 1.0, "dpo", False),
        PlanEntry(3, 0.0, "sft", True), PlanEntry(4, 0.0, "sft", True)]


def stage(routes, epochs=1.0):
    return SimpleNamespace(routes=routes, epochs=epochs)


def test_two_stages_keep_the_plan_order_inside_each():
    order, sizes = staged_plan(PLAN, [stage(["preference"]), stage(["sft"])])
    assert [e.index for e in order] == [0, 1, 2, 3, 4] and sizes == [3, 2]
    assert [e.stage for e in order] == [0, 0, 0, 1, 1]
    assert all(e.stage == 0 for e in PLAN), "the plan's own entries are not modified"


def test_epochs_repeat_and_a_fraction_takes_a_prefix():
    order, sizes = staged_plan(PLAN, [stage(["sft"], 2.0), stage(["all"], 0.4)])
    assert [e.index for e in order] == [3, 4, 3, 4, 0, 1]  # 2 passes over {3, 4}; 0.4 x 5 = the first 2
    assert sizes == [4, 2] and [e.stage for e in order] == [0, 0, 0, 0, 1, 1]


def test_a_step_belongs_to_the_stage_of_its_first_pair():
    assert stage_step_windows([8, 4], 2) == [(0, 4), (4, 6)]
    # 7 + 4 pairs, 2 a step: step 3 holds pairs 6 (stage 0) and 7 (stage 1) -> stage 0's; stage 1 = steps 4, 5
    assert stage_step_windows([7, 4], 2) == [(0, 4), (4, 6)]
    assert stage_step_windows([364, 34], 16) == [(0, 23), (23, 25)]
