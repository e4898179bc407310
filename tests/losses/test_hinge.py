"""Hinge / SLiC (methods.md 2.6), TRL 1.16 ``loss_type="hinge"``.

Hand values (beta = 0.1): Case Z 1.0; Case B 0.0 with zero gradient; h = 4 gives 0.6.
"""
import torch

from prefexp.losses.hinge import HingeLoss

from .cases import case_b, case_z, close, pair
from .trl_harness import check_dpo_parity, needs_trl


def test_canonical_cases():
    close(HingeLoss()(**case_z()).loss, 1.0)
    close(HingeLoss()(**pair(4.0, 0.0, 0.0, 0.0)).loss, 0.6)


def test_case_b_zero_gradient():
    inputs = case_b(requires_grad=True)
    out = HingeLoss()(**inputs)
    close(out.loss, 0.0)
    grads = torch.autograd.grad(out.loss, [inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]])
    assert all(float(g.abs().sum()) == 0.0 for g in grads)


@needs_trl
def test_trl_parity():
    check_dpo_parity(HingeLoss(beta=0.1), "hinge", beta=0.1, seed=1)


def test_active_pair_fraction():
    """h = [0, 20, 5] with beta 0.1: slack 1 - 0.1 h = [1, -1, 0.5]: two of three pairs active."""
    out = HingeLoss(beta=0.1)(**pair([0.0, 20.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]))
    close(out.metrics["hinge/active_fraction"], 2 / 3)
