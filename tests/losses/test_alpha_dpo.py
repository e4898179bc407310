"""AlphaDPO (methods.md 2.14), official-code semantics (margin gamma + alpha * beta * z).

Hand values (beta = 2.5, gamma/beta = 0.6, alpha = 0.2, state mu = 0, s = 1 given explicitly):
Case Z (pi = 0, M = 0): sp(1.5) = 1.701413; Case B (pi = 1, M = 1): sp(-2.5 (1 - 0.2 - 0.6)) =
sp(-0.5) = 0.474077. alpha = 0 equals SimPO(beta = 2.5, gamma/beta = 0.6) exactly.
EMA: the first call moves mu from 0 to 0.1 * mean(M) and s to 0.1 * std(M) BEFORE use.
"""
import pytest
import torch

from prefexp.losses.alpha_dpo import AlphaDPOLoss, alpha_dpo_losses
from prefexp.losses.simpo import SimPOLoss

from .cases import case_z, close, random_pairs

F64 = torch.float64
ZERO, ONE = torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)


def test_canonical_cases_given_state():
    kw = dict(beta=2.5, gamma_beta_ratio=0.6, alpha=0.2)
    close(alpha_dpo_losses(ZERO.reshape(1), ZERO.reshape(1), ZERO, ONE, **kw), [1.701413])
    close(alpha_dpo_losses(ONE.reshape(1), ONE.reshape(1), ZERO, ONE, **kw), [0.474077])


def test_alpha_zero_is_simpo():
    inputs = random_pairs()
    torch.testing.assert_close(AlphaDPOLoss(alpha=0.0)(**inputs).losses,
                               SimPOLoss(beta=2.5, gamma_beta_ratio=0.6)(**inputs).losses)


def test_ema_before_use():
    inputs = random_pairs(requires_grad=False)
    len_c, len_r = inputs["chosen_lengths"].double(), inputs["rejected_lengths"].double()
    margin = ((inputs["policy_chosen_logps"] - inputs["reference_chosen_logps"]) / len_c
              - (inputs["policy_rejected_logps"] - inputs["reference_rejected_logps"]) / len_r)
    loss = AlphaDPOLoss()
    out = loss(**inputs)
    close(loss.ref_mean, 0.1 * margin.mean())
    close(loss.ref_std, 0.1 * margin.std())
    pi = inputs["policy_chosen_logps"] / len_c - inputs["policy_rejected_logps"] / len_r
    expected = alpha_dpo_losses(pi, margin, loss.ref_mean, loss.ref_std, 2.5, 0.6, 0.2)
    torch.testing.assert_close(out.losses, expected)
    loss(**inputs, update_state=False)
    close(loss.ref_mean, 0.1 * margin.mean())


def test_zero_variance_cold_start_is_finite():
    inputs = case_z(requires_grad=True)
    out = AlphaDPOLoss()(**inputs)
    (grad,) = torch.autograd.grad(out.loss, inputs["policy_chosen_logps"])
    close(out.loss, 1.701413)  # z = 0 / eps = 0
    assert torch.isfinite(grad).all()


def test_margin_is_detached():
    """Only pi carries gradient: d L / d logp_c = -beta sigma(-x) / len_c."""
    inputs = case_z(requires_grad=True)
    inputs["reference_chosen_logps"].requires_grad_(True)
    out = AlphaDPOLoss()(**inputs)
    grads = torch.autograd.grad(out.loss, [inputs["policy_chosen_logps"], inputs["reference_chosen_logps"]],
                                allow_unused=True)
    assert grads[1] is None or float(grads[1].abs().sum()) == 0.0
    close(grads[0], -2.5 * torch.sigmoid(torch.tensor(1.5, dtype=F64)) / 10)  # x = -1.5


def test_validation():
    with pytest.raises(ValueError, match="loss.ema_decay=1"):
        AlphaDPOLoss(ema_decay=1)
    with pytest.raises(ValueError, match="loss.eps=0"):
        AlphaDPOLoss(eps=0)
