"""APO-hinge-zero (methods.md 3.5), single-beta form by default.

Hand values (beta = 0.1, m = 1): Case Z 2.0; Case B 0.5 + 0.5 = 1.0; lr_c = 10, lr_r = -10 gives
0 with zero gradients; lr_c = lr_r = 5 gives 0.5 + 1.5 = 2.0; anchoring: lr_c = 15, lr_r = 5
gives 0 + 1.5 = 1.5 (not Case B's 1.0, although h is the same). beta_squared = true (b = 0.01)
in Case B: 2 * (1 - 0.05) = 1.9.
"""
import torch

from prefexp.losses.apo_hinge_zero import APOHingeZeroLoss

from .cases import case_b, case_z, close, pair


def test_canonical_cases():
    close(APOHingeZeroLoss()(**case_z()).loss, 2.0)
    close(APOHingeZeroLoss()(**case_b()).loss, 1.0)
    close(APOHingeZeroLoss()(**pair(5.0, 5.0, 0.0, 0.0)).loss, 2.0)


def test_dead_zone():
    inputs = pair(10.0, -10.0, 0.0, 0.0, requires_grad=True)
    out = APOHingeZeroLoss()(**inputs)
    grads = torch.autograd.grad(out.loss, [inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]])
    close(out.loss, 0.0)
    assert all(float(g.abs().sum()) == 0.0 for g in grads)


def test_anchored_not_shift_invariant():
    close(APOHingeZeroLoss()(**pair(15.0, 5.0, 0.0, 0.0)).loss, 1.5)


def test_beta_squared_flag():
    close(APOHingeZeroLoss(beta_squared=True)(**case_b()).loss, 1.9)
    close(APOHingeZeroLoss(beta_squared=True)(**case_b()).chosen_rewards, 0.05)


def test_active_fractions_per_side():
    """beta 0.1, m 1: b lr_c = [0, 2, 2], b lr_r = [0, -2, 0.5]: chosen hinge open only in pair 0,
    rejected hinge open in pairs 0 and 2 (-2 <= -m closes it); any side open: pairs 0 and 2."""
    out = APOHingeZeroLoss(beta=0.1, m=1.0)(**pair([0.0, 20.0, 20.0], [0.0, -20.0, 5.0], [0.0] * 3, [0.0] * 3))
    close(out.metrics["apo_hinge_zero/active_chosen"], 1 / 3)
    close(out.metrics["apo_hinge_zero/active_rejected"], 2 / 3)
    close(out.metrics["apo_hinge_zero/active_fraction"], 2 / 3)
