"""DPO (methods.md 2.2), TRL 1.16 ``loss_type="sigmoid"``.

Hand values (beta = 0.1): Case Z ln 2 = 0.693147; Case B sp(-1) = 0.313262; h = -10 gives
sp(1) = 1.313262; d L / d logp_c = -beta sigma(-beta h) = -0.05 at h = 0; invariant to adding a
constant to all four log-probs.
"""
import math

import pytest
import torch

from prefexp.losses.dpo import DPOLoss

from .cases import case_b, case_z, close, pair, random_pairs
from .trl_harness import check_dpo_parity, needs_trl


def test_canonical_cases():
    close(DPOLoss()(**case_z()).loss, math.log(2))
    close(DPOLoss()(**case_b()).loss, 0.313262)
    close(DPOLoss()(**pair(-20.0, -10.0, -15.0, -15.0)).loss, 1.313262)


def test_gradient_at_zero_margin():
    inputs = case_z(requires_grad=True)
    (grad,) = torch.autograd.grad(DPOLoss()(**inputs).loss, inputs["policy_chosen_logps"])
    close(grad, -0.05)


def test_shift_invariance():
    inputs = random_pairs(requires_grad=False)
    shifted = {k: v + 7.0 if k.endswith("logps") else v for k, v in inputs.items()}
    torch.testing.assert_close(DPOLoss()(**inputs).losses, DPOLoss()(**shifted).losses)


def test_rewards():
    out = DPOLoss()(**case_b())
    close(out.chosen_rewards, 0.5)
    close(out.rejected_rewards, -0.5)


@needs_trl
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_trl_parity(beta):
    check_dpo_parity(DPOLoss(beta=beta), "sigmoid", beta=beta)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_validation(beta):
    with pytest.raises(ValueError, match=r"loss.beta=.* is outside the allowed range \(0, inf\)"):
        DPOLoss(beta=beta)
