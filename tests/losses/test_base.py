"""The contract helpers in prefexp/losses/base.py: range checks, NLL conventions, the pure EMA
step and the cross-rank gather (identity without torch.distributed; rank-ordered concatenation
with unequal sizes on 2 gloo ranks, a slow test)."""
import math

import pytest
import torch

from prefexp.losses.base import (batch_std, check_range, ema_update, gather_across_ranks, gather_with_offset,
                                 sequence_mean_nll, token_mean_nll_terms)

from .cases import close


def test_check_range_message():
    with pytest.raises(ValueError, match=r"loss.rho=1.0 is outside the allowed range \[0, 1\)"):
        check_range("rho", 1.0, 0, 1, high_open=True)
    check_range("tau", -math.inf)
    with pytest.raises(ValueError):
        check_range("tau", float("nan"))


def test_nll_conventions():
    logps, lengths = torch.tensor([-10.0, -60.0], dtype=torch.float64), torch.tensor([10, 30])
    close(token_mean_nll_terms(logps, lengths).mean(), 1.75)
    close(sequence_mean_nll(logps, lengths).mean(), 1.5)


def test_ema_and_std():
    mean, std = ema_update(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(2.0), torch.tensor(1.0), 0.9)
    close(mean, 0.2)
    close(std, 0.1)
    assert float(batch_std(torch.tensor([3.0]))) == 0.0
    close(batch_std(torch.tensor([1.0, 3.0], dtype=torch.float64)), math.sqrt(2))


def test_gather_is_identity_without_distributed():
    x = torch.arange(4.0)
    assert gather_across_ranks(x) is x
    assert gather_with_offset(x) == (x, 0)


def _gather_unequal(rank, world):
    x = torch.arange(3.0) if rank == 0 else 10 + torch.arange(5.0)
    return gather_with_offset(x)


@pytest.mark.slow
def test_gather_two_ranks_unequal_sizes():
    from .dist_utils import run_ranks

    results = run_ranks(_gather_unequal, world=2)
    expected = torch.cat([torch.arange(3.0), 10 + torch.arange(5.0)])
    for (gathered, offset), want_offset in zip(results, (0, 3)):
        torch.testing.assert_close(gathered, expected)
        assert offset == want_offset
