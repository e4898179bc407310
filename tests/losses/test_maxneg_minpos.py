"""MaxNeg-MinPos, hard form (methods.md 3.6).

Hand values: positives a+ = [-1, -3], negatives a- = [-1.5, -4] (lengths 1, so a = logp): s+ =
-3, s- = -1.5, gap -1.5; with beta = 1, L = sp(1.5) = 1.701413. Only the selected pair gets
gradient. Masked (padded) responses never matter, even when they hold NaN. A row without a
positive or without a negative is a ValueError naming the row. Plain pairs are groups of K = 2.
"""
import math

import pytest
import torch

from prefexp.losses.maxneg_minpos import MaxNegMinPosLoss
from prefexp.losses.simpo import SimPOLoss

from .cases import close, random_pairs

F64 = torch.float64


def group(logps, positive, mask=None, lengths=None, reference=None):
    logps = torch.tensor(logps, dtype=F64, requires_grad=True)
    out = {"group_logps": logps, "group_positive": torch.tensor(positive),
           "group_lengths": torch.ones_like(logps, dtype=torch.long) if lengths is None else torch.tensor(lengths)}
    if mask is not None:
        out["group_mask"] = torch.tensor(mask)
    if reference is not None:
        out["group_reference_logps"] = torch.tensor(reference, dtype=F64)
    return out


SANITY = dict(logps=[[-1.0, -3.0, -1.5, -4.0]], positive=[[True, True, False, False]])


def test_sanity():
    out = MaxNegMinPosLoss(beta=1.0)(**group(**SANITY))
    close(out.loss, 1.701413)
    close(out.chosen_rewards, [-3.0])
    close(out.rejected_rewards, [-1.5])
    close(out.metrics["maxneg_minpos/gap"], -1.5)


def test_gradient_only_to_selected_pair():
    inputs = group(**SANITY)
    (grad,) = torch.autograd.grad(MaxNegMinPosLoss()(**inputs).loss, inputs["group_logps"])
    s = torch.sigmoid(torch.tensor(1.5, dtype=F64))
    close(grad, [[0.0, -s, s, 0.0]])


def test_masked_entries_are_ignored_even_if_nan():
    inputs = group(logps=[[-1.0, -3.0, -1.5, -4.0, float("nan"), 5.0]],
                   positive=[[True, True, False, False, True, False]], mask=[[True] * 4 + [False] * 2],
                   lengths=[[1, 1, 1, 1, 0, 0]])
    out = MaxNegMinPosLoss()(**inputs)
    close(out.loss, 1.701413)
    (grad,) = torch.autograd.grad(out.loss, inputs["group_logps"])
    assert torch.isfinite(grad).all() and float(grad[0, 4:].abs().sum()) == 0.0


def test_scores_are_per_token_means_and_reference():
    inputs = group(logps=[[-10.0, -6.0]], positive=[[True, False]], lengths=[[10, 2]], reference=[[-20.0, -2.0]])
    close(MaxNegMinPosLoss()(**inputs).metrics["maxneg_minpos/gap"], -1.0 - (-3.0))
    loss = MaxNegMinPosLoss(use_reference=True)
    assert loss.needs_reference
    close(loss(**inputs).metrics["maxneg_minpos/gap"], (-1.0 + 2.0) - (-3.0 + 1.0))


@pytest.mark.parametrize("positive,side", [([[True, False], [False, False]], "positive"),
                                           ([[True, False], [True, True]], "negative")])
def test_row_without_a_side_raises(positive, side):
    inputs = group(logps=[[-1.0, -2.0], [-1.0, -2.0]], positive=positive)
    with pytest.raises(ValueError, match=f"row 1 has no valid {side}"):
        MaxNegMinPosLoss()(**inputs)


def test_pairs_fallback():
    inputs = random_pairs()
    assert "group_logps" not in inputs
    torch.testing.assert_close(MaxNegMinPosLoss(beta=2.0)(**inputs).losses,
                               SimPOLoss(beta=2.0, gamma_beta_ratio=0.0)(**inputs).losses)


def test_flags():
    assert MaxNegMinPosLoss.needs_groups and MaxNegMinPosLoss.needs_lengths
    assert not MaxNegMinPosLoss.needs_reference
    with pytest.raises(ValueError, match="loss.beta=0"):
        MaxNegMinPosLoss(beta=0)
    assert math.isfinite(float(MaxNegMinPosLoss()(**group(**SANITY)).loss.detach()))
