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


def test_token_cleaning_averages_kept_tokens_only():
    """Kept tokens: row 0 keeps log-probs -1 and -3 (of -1, -2, -3), row 1 keeps -4 (of -4, -8).
    token: (1 + 3 + 4) / 3 = 8/3; sequence: mean(4/2, 4/1) = 3. The summed log-probs are ignored."""
    token_logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -8.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    inputs = pair([-6.0, -12.0], [-5.0, -5.0], [0.0, 0.0], [0.0, 0.0], len_c=[3, 2], len_r=[5, 5])
    close(SFTLoss("token")(**inputs, chosen_token_logps=token_logps, chosen_token_mask=mask).loss, 8 / 3)
    out = SFTLoss("sequence")(**inputs, chosen_token_logps=token_logps, chosen_token_mask=mask)
    close(out.loss, 3.0)
    (grad,) = torch.autograd.grad(out.loss, [token_logps])
    close(grad, torch.tensor([[-0.25, 0.0, -0.25], [-0.5, 0.0, 0.0]]))  # dropped tokens get no gradient
    assert SFTLoss.supports_token_cleaning


def test_token_cleaning_all_kept_equals_plain_sft():
    token_logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -8.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    inputs = pair([-6.0, -12.0], [-5.0, -5.0], [0.0, 0.0], [0.0, 0.0], len_c=[3, 2], len_r=[5, 5])
    for normalize in ("token", "sequence"):
        cleaned = SFTLoss(normalize)(**inputs, chosen_token_logps=token_logps, chosen_token_mask=mask).losses
        close(cleaned, SFTLoss(normalize)(**inputs).losses)
