"""APO-hinge-softplus (methods.md 3.5).

Hand values (beta = 0.1, m = 1): Case Z 2 sp(1) = 2.626523; Case B 2 sp(0.5) = 1.948154; never
shift-invariant: adding 10 to both log-ratios of Case B changes the loss.
"""
import torch
import torch.nn.functional as F

from prefexp.losses.apo_hinge_softplus import APOHingeSoftplusLoss

from .cases import case_b, case_z, close, pair


def test_canonical_cases():
    close(APOHingeSoftplusLoss()(**case_z()).loss, 2.626523)
    close(APOHingeSoftplusLoss()(**case_b()).loss, 1.948154)


def test_not_shift_invariant():
    shifted = APOHingeSoftplusLoss()(**pair(15.0, 5.0, 0.0, 0.0)).loss
    assert abs(float(shifted) - 1.948154) > 0.1


def test_beta_squared_flag():
    out = APOHingeSoftplusLoss(beta_squared=True)(**case_b())
    close(out.loss, 2 * F.softplus(torch.tensor(1 - 0.05, dtype=torch.float64)))  # b = 0.01
