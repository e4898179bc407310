"""MADPO (methods.md 3.3), official ``MADPOLoss`` with the notebook's hyperparameters.

Hand values (beta = 0.1, c_max = 2, c_min = 0.5, lam = 1, tau = logit(0.999) = 6.906755):
c(0) = 1.997003; w(0) = 1 (Case Z, m = 0: 0.693147); w(1) = 1.203655 (Case Z: 0.834310, Case B:
0.377059); w(-1) = 0.446409 (Case B: 0.139843); w(tau) = w(-tau) = 1; w(-8) = 1 (m <= -tau
branch); w(10) = 0.995237. The weight is detached: no gradient reaches the margins.
"""
import math

import pytest
import torch

from prefexp.losses.madpo import LOGIT_0999, MADPOLoss, madpo_scale, madpo_weights

from .cases import case_b, case_z, close

F64 = torch.float64


def _m(*values):
    return torch.tensor(values, dtype=F64)


def test_scale_and_weights():
    close(madpo_scale(_m(0.0), 2.0, 0.5, 1.0, LOGIT_0999), [1.997003])
    close(madpo_scale(_m(LOGIT_0999), 2.0, 0.5, 1.0, LOGIT_0999), [1.0])
    close(madpo_weights(_m(0.0, 1.0, -1.0, LOGIT_0999, -LOGIT_0999, -8.0, 10.0)),
          [1.0, 1.203655, 0.446409, 1.0, 1.0, 1.0, 0.995237])


def test_losses():
    close(MADPOLoss()(**case_z(margins=_m(0.0))).loss, math.log(2))
    close(MADPOLoss()(**case_z(margins=_m(1.0))).loss, 0.834310)
    close(MADPOLoss()(**case_b(margins=_m(1.0))).loss, 0.377059)
    out = MADPOLoss()(**case_b(margins=_m(-1.0)))
    close(out.loss, 0.139843)
    close(out.metrics["madpo/mean_weight"], 0.446409)


def test_no_gradient_to_margins():
    margins = _m(1.0, -1.0).requires_grad_(True)
    inputs = case_b(margins=margins, requires_grad=True)
    inputs = {k: (v.expand(2) if v.dim() == 1 and v.numel() == 1 else v) for k, v in inputs.items()}
    out = MADPOLoss()(**inputs)
    (grad,) = torch.autograd.grad(out.loss, margins, allow_unused=True)
    assert grad is None or float(grad.abs().sum()) == 0.0


def test_defaults_and_own_tau():
    loss = MADPOLoss(c_max=4.0)
    assert loss.c_min == 0.25 and loss.weight_tau == pytest.approx(6.906755, abs=1e-6)
    assert MADPOLoss.needs_margins and not MADPOLoss.uses_tau


@pytest.mark.parametrize("kw,key", [({"c_max": 1.0}, "c_max"), ({"c_min": 1.0}, "c_min"),
                                    ({"lam": 0.0}, "lam"), ({"weight_tau": -1.0}, "weight_tau")])
def test_validation(kw, key):
    with pytest.raises(ValueError, match=f"loss.{key}="):
        MADPOLoss(**kw)
