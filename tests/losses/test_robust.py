"""Robust DPO (methods.md 2.4), TRL 1.16 ``loss_type="robust"``.

Hand values (beta = 0.1): Case Z 0.693147; Case B with eps = 0.1: (0.9 sp(-1) - 0.1 sp(1)) / 0.8
= 0.188262; the loss turns negative for beta h > 1.545760 at eps = 0.1 and is not clamped.
"""
import math

import pytest

from prefexp.losses.robust import RobustDPOLoss

from .cases import case_b, case_z, close, pair
from .trl_harness import check_dpo_parity, needs_trl


def test_canonical_cases():
    close(RobustDPOLoss(label_smoothing=0.1)(**case_z()).loss, math.log(2))
    close(RobustDPOLoss(label_smoothing=0.1)(**case_b()).loss, 0.188262)


def test_negative_and_unclamped():
    loss = RobustDPOLoss(beta=1.0, label_smoothing=0.1)
    assert loss(**pair(1.5, 0.0, 0.0, 0.0)).loss > 0
    assert loss(**pair(1.6, 0.0, 0.0, 0.0)).loss < 0
    close(loss(**pair(1.545760, 0.0, 0.0, 0.0)).loss, 0.0)
    assert loss(**pair(100.0, 0.0, 0.0, 0.0)).loss < -10


@needs_trl
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_trl_parity(eps):
    check_dpo_parity(RobustDPOLoss(label_smoothing=eps), "robust", label_smoothing=eps)


def test_validation():
    with pytest.raises(ValueError, match=r"loss.label_smoothing=0.5 .*\[0, 0.5\)"):
        RobustDPOLoss(label_smoothing=0.5)
