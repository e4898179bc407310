"""cDPO (methods.md 2.3).

Hand values (beta = 0.1): Case Z 0.693147 for every eps; Case B with eps = 0.1: 0.9 sp(-1) +
0.1 sp(1) = 0.413262; the minimum over h is at beta h = log((1-eps)/eps).
TRL 1.16 has no cDPO: ``sigmoid`` ignores label_smoothing since v0.29 (methods.md pitfall 1).
The parity test therefore pins eps = 0 against TRL ``sigmoid`` and checks that TRL's sigmoid
with label_smoothing > 0 is plain DPO, not cDPO (the version change our module deliberately
does not follow).
"""
import math

import pytest
import torch

from prefexp.losses.cdpo import CDPOLoss
from prefexp.losses.dpo import DPOLoss

from .cases import case_b, case_z, close, pair, random_pairs
from .trl_harness import check_dpo_parity, needs_trl


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_case_z_any_eps(eps):
    close(CDPOLoss(label_smoothing=eps)(**case_z()).loss, math.log(2))


def test_case_b():
    close(CDPOLoss(label_smoothing=0.1)(**case_b()).loss, 0.413262)


def test_finite_minimum():
    eps, beta = 0.1, 0.1
    h = math.log((1 - eps) / eps) / beta
    inputs = pair(h, 0.0, 0.0, 0.0, requires_grad=True)
    (grad,) = torch.autograd.grad(CDPOLoss(beta, eps)(**inputs).loss, inputs["policy_chosen_logps"])
    close(grad, 0.0, atol=1e-12)


def test_eps_zero_is_dpo():
    inputs = random_pairs(requires_grad=False)
    torch.testing.assert_close(CDPOLoss(label_smoothing=0.0)(**inputs).losses, DPOLoss()(**inputs).losses)


@needs_trl
def test_trl_parity_eps_zero():
    check_dpo_parity(CDPOLoss(label_smoothing=0.0), "sigmoid")


@needs_trl
def test_trl_sigmoid_ignores_label_smoothing():
    """TRL >= 0.29: sigmoid + label_smoothing is DPO; ours keeps the v0.28 cDPO meaning."""
    check_dpo_parity(DPOLoss(), "sigmoid", label_smoothing=0.1)
    with pytest.raises(AssertionError):
        check_dpo_parity(CDPOLoss(label_smoothing=0.1), "sigmoid", label_smoothing=0.1)


@pytest.mark.parametrize("eps", [-0.1, 0.5, 0.7])
def test_validation(eps):
    with pytest.raises(ValueError, match=r"loss.label_smoothing=.* \[0, 0.5\)"):
        CDPOLoss(label_smoothing=eps)
