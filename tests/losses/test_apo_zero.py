"""APO-zero (methods.md 2.11), TRL 1.16 ``loss_type="apo_zero"``.

Hand values (beta = 0.1): Case Z 1.0; Case B (1 - sigma(0.5)) + sigma(-0.5) = 0.755081.
"""
import torch

from prefexp.losses.apo_zero import APOZeroLoss

from .cases import case_b, case_z, close
from .trl_harness import check_dpo_parity, needs_trl


def test_canonical_cases():
    close(APOZeroLoss()(**case_z()).loss, 1.0)
    close(APOZeroLoss()(**case_b()).loss, 0.755081)


def test_directions():
    """Chosen likelihood pushed up, rejected down, independently."""
    inputs = case_b(requires_grad=True)
    g_c, g_r = torch.autograd.grad(APOZeroLoss()(**inputs).loss,
                                   [inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]])
    assert g_c < 0 and g_r > 0


@needs_trl
def test_trl_parity():
    check_dpo_parity(APOZeroLoss(), "apo_zero")
