"""IPO (methods.md 2.5), TRL 1.16 ``loss_type="ipo"``.

Hand values (beta = 0.1, target 1/(2 beta) = 5): Case Z 25.0 under both conventions; Case B
16.0 with TRL's per-token normalisation (hbar = 1) and 25.0 with the paper's sums (h = 10); the
loss is 0 at hbar = 5.
Departure documented in ipo.py: ``length_normalize=True`` (default) is TRL's form; False is the
paper's summed form, which equals TRL's only when every length is 1 (tested).
"""
import pytest
import torch

from prefexp.losses.ipo import IPOLoss

from .cases import case_b, case_z, close, pair
from .trl_harness import check_dpo_parity, needs_trl


@pytest.mark.parametrize("normalize", [True, False])
def test_case_z(normalize):
    close(IPOLoss(length_normalize=normalize)(**case_z()).loss, 25.0)


def test_case_b_conventions():
    close(IPOLoss(length_normalize=True)(**case_b()).loss, 16.0)
    close(IPOLoss(length_normalize=False)(**case_b()).loss, 25.0)


def test_zero_at_target():
    close(IPOLoss()(**pair(-10.0 + 25.0, -20.0 - 25.0, -10.0, -20.0)).loss, 0.0)  # hbar = 50/10 = 5


def test_flags_follow_the_form():
    assert IPOLoss(length_normalize=True).needs_lengths
    assert not IPOLoss(length_normalize=False).needs_lengths
    inputs = {k: v for k, v in case_b().items() if "lengths" not in k}
    close(IPOLoss(length_normalize=False)(**inputs).loss, 25.0)


@needs_trl
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_trl_parity(beta):
    check_dpo_parity(IPOLoss(beta=beta), "ipo", beta=beta)


@needs_trl
def test_paper_form_is_trl_at_unit_lengths():
    check_dpo_parity(IPOLoss(length_normalize=False), "ipo", lengths=torch.ones(10, dtype=torch.long))
    with pytest.raises(AssertionError):
        check_dpo_parity(IPOLoss(length_normalize=False), "ipo")
