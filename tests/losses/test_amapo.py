"""AMaPO (methods.md 2.15), official-code semantics.

Hand values (beta = 2, batch x = u_c - u_r = [0.5, -0.5, 1.0, 0.0], so m = 0.25 and unbiased
s = 0.645497): margins g = [0, 2.674122, 0, 2.203334]; L = [0.313262, 3.699177, 0.126928,
2.308085], mean 1.611863. An all-equal batch (Case Z) has s = 0: NaN without the eps floor.
"""
import pytest
import torch

from prefexp.losses.amapo import AMaPOLoss, amapo_margins
from prefexp.losses.simpo import SimPOLoss

from .cases import case_z, close, pair

X = [0.5, -0.5, 1.0, 0.0]


def _inputs(requires_grad=False):
    # len 10, u_r = -1, u_c = x - 1 -> x = u_c - u_r
    return pair([10 * (x - 1) for x in X], [-10.0] * 4, [0.0] * 4, [0.0] * 4, requires_grad=requires_grad)


def test_sanity_batch():
    x = torch.tensor(X, dtype=torch.float64)
    close(amapo_margins(x, x, beta=2.0), [0.0, 2.674122, 0.0, 2.203334])
    out = AMaPOLoss(beta=2.0)(**_inputs())
    close(out.losses, [0.313262, 3.699177, 0.126928, 2.308085])
    close(out.loss, 1.611863)


def test_margins_detached():
    inputs = _inputs(requires_grad=True)
    out = AMaPOLoss(beta=2.0)(**inputs)
    (grad,) = torch.autograd.grad(out.loss, inputs["policy_chosen_logps"])
    # d/dlogp_c sp(-(2 x - g)) = -2 sigma(g - 2x) / len / B, g treated as a constant
    x = torch.tensor(X, dtype=torch.float64)
    g = amapo_margins(x, x, 2.0)
    close(grad, -2 * torch.sigmoid(g - 2 * x) / 10 / 4)


def test_all_equal_batch_is_simpo_without_margin():
    inputs = pair([-10.0] * 3, [-10.0] * 3, [0.0] * 3, [0.0] * 3, requires_grad=True)
    out = AMaPOLoss(beta=2.0)(**inputs)
    torch.testing.assert_close(out.losses, SimPOLoss(beta=2.0, gamma_beta_ratio=0.0)(**inputs).losses)
    close(AMaPOLoss()(**case_z()).loss, 0.693147)


def test_extreme_margin_stays_finite():
    inputs = pair([0.0, -1e4, -1e4, -1e4], [-1e4, 0.0, 0.0, 0.0], [0.0] * 4, [0.0] * 4, len_c=1, len_r=1,
                  requires_grad=True)
    out = AMaPOLoss()(**inputs)
    (grad,) = torch.autograd.grad(out.loss, inputs["policy_chosen_logps"])
    assert torch.isfinite(out.losses).all() and torch.isfinite(grad).all()


def test_reference_free():
    assert AMaPOLoss.needs_reference is False
    with pytest.raises(ValueError, match="loss.beta=0"):
        AMaPOLoss(beta=0)
