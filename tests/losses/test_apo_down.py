"""APO-down (methods.md 2.11), TRL 1.16 ``loss_type="apo_down"``.

Hand values (beta = 0.1): Case Z 1.0; Case B sigma(0.5) + (1 - sigma(1)) = 0.891401.
"""
from prefexp.losses.apo_down import APODownLoss

from .cases import case_b, case_z, close
from .trl_harness import check_dpo_parity, needs_trl


def test_canonical_cases():
    close(APODownLoss()(**case_z()).loss, 1.0)
    close(APODownLoss()(**case_b()).loss, 0.891401)


@needs_trl
def test_trl_parity():
    check_dpo_parity(APODownLoss(), "apo_down")
