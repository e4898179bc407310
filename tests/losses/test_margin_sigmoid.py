"""Margin-sigma (methods.md 3.4).

Hand values (beta = 0.1, eps = 0): delta = 0.2: Case Z ln 2 - 0.2 = 0.493147; Case B 0.313262 -
0.2 = 0.113262; with eps = 0.1 in Case B 0.9 * 0.113262 + 0.1 * (1.313262 - 0.2) = 0.213262.
delta = sp(-1) exactly: Case B sits on the boundary, loss 0 with zero gradient. delta = 0 is cDPO.
"""
import pytest
import torch
import torch.nn.functional as F

from prefexp.losses.cdpo import CDPOLoss
from prefexp.losses.margin_sigmoid import SOFTPLUS_MINUS_1, MarginSigmoidLoss

from .cases import case_b, case_z, close, random_pairs


def test_canonical_cases():
    close(MarginSigmoidLoss(delta=0.2)(**case_z()).loss, 0.493147)
    close(MarginSigmoidLoss(delta=0.2)(**case_b()).loss, 0.113262)
    close(MarginSigmoidLoss(delta=0.2, label_smoothing=0.1)(**case_b()).loss, 0.213262)


def test_boundary_dead_zone():
    close(SOFTPLUS_MINUS_1, 0.313262)
    delta = float(F.softplus(torch.tensor(-1.0, dtype=torch.float64)))  # bit-identical to the loss's sp(-1)
    inputs = case_b(requires_grad=True)
    out = MarginSigmoidLoss(delta=delta)(**inputs)
    (grad,) = torch.autograd.grad(out.loss, inputs["policy_chosen_logps"])
    assert float(out.loss.detach()) == 0.0 and float(grad) == 0.0


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_delta_zero_is_cdpo(eps):
    inputs = random_pairs()
    torch.testing.assert_close(MarginSigmoidLoss(delta=0.0, label_smoothing=eps)(**inputs).losses,
                               CDPOLoss(label_smoothing=eps)(**inputs).losses)


def test_validation():
    with pytest.raises(ValueError, match=r"loss.delta=0.7 .*\[0, 0.693147\)"):
        MarginSigmoidLoss(delta=0.7)


def test_active_pair_fraction():
    """delta = sp(-1): a pair is active while beta h < 1; h = [0, 20, 9] with beta 0.1 -> 2 of 3."""
    from .cases import pair

    out = MarginSigmoidLoss(beta=0.1)(**pair([0.0, 20.0, 9.0], [0.0] * 3, [0.0] * 3, [0.0] * 3))
    close(out.metrics["margin_sigmoid/active_fraction"], 2 / 3)
