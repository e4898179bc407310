"""DPO + NLL / RPO (methods.md 2.12), TRL 1.16 ``loss_type=["sigmoid", "sft"]``,
``loss_weights=[1, alpha]`` (the former ``rpo_alpha``).

Hand values (beta = 0.1, alpha = 1): Case Z 0.693147 + 1.0 = 1.693147; Case B 0.313262 + 1.0 =
1.313262. With lengths 10 and 30 and logp_c = -10, -60 (h = 0), token NLL 1.75 vs sequence 1.5.
"""
import math

import pytest

from prefexp.losses.rpo import RPOLoss

from .cases import case_b, case_z, close, pair
from .trl_harness import check_dpo_parity, needs_trl


def test_canonical_cases():
    close(RPOLoss()(**case_z()).loss, 1.693147)
    close(RPOLoss()(**case_b()).loss, 1.313262)


def test_nll_conventions():
    inputs = pair([-10.0, -60.0], [-10.0, -60.0], [-10.0, -60.0], [-10.0, -60.0], len_c=[10, 30], len_r=[10, 30])
    close(RPOLoss(nll="token")(**inputs).loss, math.log(2) + 1.75)
    close(RPOLoss(nll="sequence")(**inputs).loss, math.log(2) + 1.5)


@needs_trl
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_trl_parity(alpha):
    check_dpo_parity(RPOLoss(alpha=alpha), ["sigmoid", "sft"], loss_weights=[1.0, alpha])


def test_validation():
    with pytest.raises(ValueError, match="loss.nll='mean'"):
        RPOLoss(nll="mean")
    with pytest.raises(ValueError, match=r"loss.alpha=-1"):
        RPOLoss(alpha=-1)
