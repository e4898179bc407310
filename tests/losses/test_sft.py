"""SFT (methods.md 2.1). Pins the token-mean convention (TRL's ``sft``) as the default.

Hand values: Case Z and Case B give NLL 1.0 under both conventions. Two pairs with lengths
10 and 30 and logp_c = -10, -60: token mean 70/40 = 1.75, per-sequence mean (1 + 2)/2 = 1.5.
TRL parity: DPOTrainer._compute_loss with loss_type="sft" on the same per-token log-probs.
"""
import pytest
import torch

from prefexp.losses.sft import SFTLoss

from .cases import case_b, case_z, close, pair
from .trl_harness import check_dpo_parity, needs_trl


@pytest.mark.parametrize("normalize", ["token", "sequence"])
def test_canonical_cases(normalize):
    loss = SFTLoss(normalize=normalize)
    close(loss(**case_z()).loss, 1.0)
    close(loss(**case_b()).loss, 1.0)


def test_conventions_differ_with_lengths():
    inputs = pair([-10.0, -60.0], [-5.0, -5.0], [0.0, 0.0], [0.0, 0.0], len_c=[10, 30], len_r=[5, 5])
    close(SFTLoss("token")(**inputs).loss, 1.75)
    close(SFTLoss("sequence")(**inputs).loss, 1.5)


def test_reference_free_and_rejected_ignored():
    assert SFTLoss.needs_reference is False and SFTLoss.needs_lengths is True
    inputs = case_b(requires_grad=True)
    out = SFTLoss()(policy_chosen_logps=inputs["policy_chosen_logps"], chosen_lengths=inputs["chosen_lengths"],
                    policy_rejected_logps=inputs["policy_rejected_logps"], rejected_lengths=inputs["rejected_lengths"])
    grads = torch.autograd.grad(out.loss, [inputs["policy_chosen_logps"], inputs["policy_rejected_logps"]],
                                allow_unused=True)
    close(grads[0], -0.1)
    assert grads[1] is None
    close(out.chosen_rewards, -1.0)
    close(out.rejected_rewards, -2.0)


@needs_trl
def test_trl_parity():
    """TRL's sft term: -mean of chosen per-token log-probs over all chosen tokens of the batch."""
    check_dpo_parity(SFTLoss("token"), "sft", compare_rewards=False)


def test_validation():
    with pytest.raises(ValueError, match="loss.normalize='mean'"):
        SFTLoss(normalize="mean")
