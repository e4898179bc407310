"""The logging window: the same means as one ``.item()`` per scalar per micro-batch, read once."""
from __future__ import annotations

import pytest
import torch

from prefexp.engine.metric_window import MetricWindow
from prefexp.engine.nonfinite import NonFiniteGuard


def test_plain_means_equal_the_per_item_means_exactly():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(5, generator=g) for _ in range(3)]
    w = MetricWindow()
    for b in batches:
        w.add("rewards/chosen", b.mean())
        w.add("kto/kl", 0.25)  # a loss may report a Python number
    expected = sum(b.mean().item() for b in batches) / 3
    assert w.means() == {"rewards/chosen": expected, "kto/kl": 0.25}
    assert not w and w.means() == {}  # emptied by the read


def test_masked_means_skip_micro_batches_whose_mask_selected_nothing():
    w = MetricWindow()
    x1, m1 = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([True, False, True])
    x2, m2 = torch.tensor([8.0, 16.0]), torch.tensor([False, False])
    x3, m3 = torch.tensor([-3.0]), torch.tensor([True])
    for x, m in ((x1, m1), (x2, m2), (x3, m3)):
        w.add_masked_mean("loss/difficult", x, m)
        w.add_masked_mean("loss/none", x, torch.zeros_like(m))
    out = w.means()
    assert out["loss/difficult"] == pytest.approx(((1 + 4) / 2 + -3) / 2, abs=1e-7)  # (2.5 - 3) / 2
    assert "loss/none" not in out  # no micro-batch had such a pair: not logged, as before


def test_a_bf16_value_is_logged_as_its_exact_float():
    w = MetricWindow()
    v = torch.tensor(1 / 3, dtype=torch.bfloat16)
    w.add("logps/chosen", v)
    assert w.means()["logps/chosen"] == v.item()


def test_the_guard_reads_tensor_rows_and_a_deferred_loss_flag():
    guard = NonFiniteGuard("stop")
    guard.see_micro_batch(torch.tensor([4, 7]), torch.tensor(0.69))
    guard.see_micro_batch(torch.tensor([9]), torch.tensor(float("inf")))
    guard.see_micro_batch([], torch.tensor(0.5))  # a later finite micro-batch does not clear it
    assert guard.problem(torch.tensor(1.0)) == "loss" and guard.step_rows == [4, 7, 9]
    guard.next_step()
    guard.see_micro_batch(torch.tensor([1]), torch.tensor(0.7))
    assert guard.problem(torch.tensor(float("nan"))) == "gradient norm" and guard.previous_rows == [4, 7, 9]
